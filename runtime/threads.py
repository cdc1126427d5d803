"""Thread settings for compiled CPU models: Numba's pool runs our parallel
loops, and the BLAS that Numba's np.dot calls (scipy's OpenBLAS) is kept to
one thread, so the two never fight over cores (a 2-thread OpenBLAS on the many
small GEMMs of a CNN was measured several times slower than one thread here)."""
from __future__ import annotations

import numba


def resolve(threads: int | None) -> int:
    """The thread count to compile for: `threads`, else NUMBA_NUM_THREADS (default: the core count)."""
    limit = numba.config.NUMBA_NUM_THREADS
    return max(1, min(int(threads), limit)) if threads else limit


def configure(threads: int) -> None:
    """Set Numba's thread count (for the calling thread, as numba.set_num_threads does) and make
    scipy's BLAS single-threaded for the whole process. numpy's own BLAS is left alone. Needs
    threadpoolctl; without it OPENBLAS_NUM_THREADS=1 in the environment does the same."""
    numba.set_num_threads(threads)
    try:
        import scipy.linalg.cython_blas  # noqa: F401 (loads the library Numba will call)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        if lib.user_api == "blas" and "scipy.libs" in lib.filepath.replace("\\", "/"):
            lib.set_num_threads(1)
