"""Thread settings for compiled CPU models: Numba's pool runs our parallel
loops, and the BLAS that Numba's np.dot calls (scipy's OpenBLAS) is kept to
one thread, so the two never fight over cores (a 2-thread OpenBLAS on the many
small GEMMs of a CNN was measured several times slower than one thread here).

Importing this module sets GOMP_SPINCOUNT=100000 unless the user set it or
OMP_WAIT_POLICY: Numba's OpenMP workers then spin briefly (tens of microseconds) between
parallel loops and sleep after that. libgomp's own default spins up to ~300,000
times, which on a 2-core machine with anything else running took the core the
caller needed: bert_small at 2 threads ran 412 ms against onnxruntime's 30 ms.
Measured at 2 threads (bert_small, ms, onnxruntime ~7.3 quiet / ~17-19 with one
busy process beside): spin 300: 16.7 quiet, 19.2 busy; 1000: 13.8, 22.7; 3000:
10.2, 32.8; 10000: 9.9, 62; OMP_WAIT_POLICY=PASSIVE: 17.4, 18.3; gpt2_small
quiet: 3000: 13.8, 10000: 6.5, 30000: 6.6). On the AMD EPYC VM that followed, a worker
that has gone to sleep took ~1.2 ms to wake: the bench MLP at 2 threads (two parallel
loops a call, its calls 50 ms apart in blocks) ran 1.31 ms with 10000 against 0.09 with
100000 (onnxruntime 0.07), and the suite's 2-thread geomean went from 1.94 to 1.37. A
high count favours a machine of one's own; on a shared one, OMP_WAIT_POLICY=PASSIVE. It
must be set before Numba starts its pool, which loads libgomp and reads it once.

Left as it is, measured on that VM (session 18): after 50 ms or more with no call, the first
three parallel loops of the next call take milliseconds (an empty prange at 2 threads: 4.2,
4.0, 1.6 ms, then 2 us; 1,000,000 spins only moves this to idle times above the 25 ms it
spins). PASSIVE has no such start (60 us, then ~9 us a loop) but made whole models about
twice as slow at 2 threads (bench protocol: resnet18_half 4.7 -> 9.3 ms, mobilenetv2_half 1.6
-> 3.4, bert_small 5.1 -> 9.7). onnxruntime's pool avoids both: its caller runs the work
that no worker has started instead of waiting at a barrier, which OpenMP cannot do.
pin_workers (session 21) removes most of that start: the slow loops were a woken worker
waiting for the caller's CPU (below)."""
from __future__ import annotations

import os
import threading

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "100000"

import numba  # noqa: E402 (after the OpenMP setting)
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import prange, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402


def _prefer_openmp() -> None:
    """Numba's OpenMP layer unless the user chose one: Numba would otherwise take TBB
    wherever the tbb package is installed (mkl brings it), and TBB's parallel regions cost
    more here (bert_small at 2 threads, alone: 3.9 ms with OpenMP, 4.8 with TBB; a
    20k-element prange 25 against 34 us)."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    try:
        import numba.np.ufunc.omppool  # noqa: F401
    except ImportError:
        return
    numba.config.THREADING_LAYER = "omp"


_prefer_openmp()


def resolve(threads: int | None) -> int:
    """The thread count to compile for: `threads`, else NUMBA_NUM_THREADS (default: the core count)."""
    limit = numba.config.NUMBA_NUM_THREADS
    return max(1, min(int(threads), limit)) if threads else limit


@intrinsic
def _gettid(typingctx):
    """The calling thread's id in the kernel (libc's gettid), as os.sched_setaffinity takes it."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "gettid")
        return builder.sext(builder.call(fn, []), ir.IntType(64))
    return types.int64(), codegen


@numba.njit(cache=True, parallel=True)
def _thread_ids(out):
    """Each thread of a parallel loop of len(out) iterations writes its id (one iteration a thread:
    OpenMP's static schedule; the caller's is out[0])."""
    for p in prange(out.shape[0]):
        out[p] = _gettid()


_pinned: set = set()


def pin_workers(threads: int) -> None:
    """Pins each of Numba's OpenMP worker threads to a CPU of its own (the caller's thread stays
    free, as do threads made later, which inherit the caller's mask).

    Why: on this project's 2-vCPU VMs, after 50 ms or more with no call, the first parallel
    loops took 4.3, 1.4 ms (an empty prange at 2 threads; then 3 us): the woken worker waits
    for the CPU of the caller, which spins at the loop's barrier, until a scheduler tick. With
    the worker on the other CPU: 0.18 ms, then 4 us. OMP_PROC_BIND does the same but pins the
    caller too, and every thread it starts after (onnxruntime's pool on one CPU).
    ONNXJIT_PIN_THREADS=0, OMP_PROC_BIND or GOMP_CPU_AFFINITY leave the threads alone."""
    if (threads < 2 or os.environ.get("ONNXJIT_PIN_THREADS", "1") == "0" or "OMP_PROC_BIND" in os.environ
            or "GOMP_CPU_AFFINITY" in os.environ or numba.config.THREADING_LAYER != "omp"
            or not hasattr(os, "sched_setaffinity")):
        return
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return
        ids = np.zeros(threads, np.int64)
        _thread_ids(ids)
        if numba.threading_layer() != "omp":
            return
        caller = threading.get_native_id()
        for p, tid in enumerate(ids.tolist()):
            if 0 < tid != caller and tid not in _pinned:
                os.sched_setaffinity(tid, {cpus[p % len(cpus)]})
                _pinned.add(tid)
    except Exception:      # no gettid, a thread gone, a mask refused: leave them unpinned
        return


def configure(threads: int) -> None:
    """Set Numba's thread count (for the calling thread, as numba.set_num_threads does) and make
    scipy's BLAS single-threaded for the whole process. numpy's own BLAS is left alone. Needs
    threadpoolctl; without it OPENBLAS_NUM_THREADS=1 in the environment does the same."""
    numba.set_num_threads(threads)
    pin_workers(threads)
    try:
        import scipy.linalg.cython_blas  # noqa: F401 (loads the library Numba will call)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        if lib.user_api == "blas" and "scipy.libs" in lib.filepath.replace("\\", "/"):
            lib.set_num_threads(1)
