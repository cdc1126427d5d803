"""Thread settings for compiled CPU models: Numba's pool runs our parallel
loops, and the BLAS that Numba's np.dot calls (scipy's OpenBLAS) is kept to
one thread, so the two never fight over cores (a 2-thread OpenBLAS on the many
small GEMMs of a CNN was measured several times slower than one thread here).

Importing this module sets OMP_WAIT_POLICY=PASSIVE unless the user set it (or
GOMP_SPINCOUNT): Numba's OpenMP workers then sleep between parallel loops
instead of spinning. On a 2-core machine with anything else running, spinning
workers took the core the caller needed: bert_small at 2 threads ran 412 ms
against 19 ms passive (onnxruntime 30 ms) in the same conditions. It must be
set before Numba starts its pool, which loads libgomp and reads it once."""
from __future__ import annotations

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import numba  # noqa: E402 (after the OpenMP setting)


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
