"""The GEMM that compiled kernels call, bound by symbol name at load time.

Generated and library kernels call `onnxjit_sgemm` / `onnxjit_dgemm` (the Fortran
BLAS ABI: every argument a pointer, LP64 integers). Those names are bound here,
in the process, before any kernel loads: compiled code (and so the disk cache)
holds only the name, never an address.

The binding is Intel MKL's sequential GEMM where the `mkl` package is installed
(x86_64), else the OpenBLAS that scipy ships. Measured single-threaded on this
2-core Xeon (AVX-512), MKL against scipy's OpenBLAS: the 7x7 stem of a ResNet as a
32x147x12544 GEMM 0.85 against 1.76 ms, MobileNet's 1x1 convs (48x8x12544,
96x16x3136) 0.13 / 0.07 against 0.25 / 0.13 ms, a BERT FFN 128x256x1024 0.42
against 0.52 ms; the large square ones are even. `ONNXJIT_BLAS=openblas` forces
the fallback (a numeric difference can be bisected by it).

Sequential MKL: threads are ours (Numba's prange bands), as with OpenBLAS."""
from __future__ import annotations

import ctypes
import glob
import os
import sys

import llvmlite.binding as ll

SYMBOLS = ("onnxjit_sgemm", "onnxjit_dgemm")
_MKL_SEQUENTIAL = 1      # MKL_Set_Threading_Layer's code for the sequential layer


def _mkl():
    """libmkl_rt from the `mkl` wheel (it installs into the environment's lib/), or None."""
    names = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        names += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
    for path in names:
        try:
            lib = ctypes.CDLL(path)
            lib.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_SEQUENTIAL))
            return lib, (lib.sgemm_, lib.dgemm_)
        except (OSError, AttributeError):
            continue
    return None


def _openblas():
    """scipy's cython_blas sgemm/dgemm (the BLAS Numba's own np.dot calls)."""
    import scipy.linalg.cython_blas as cb
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return [get(c, get_name(c)) for c in (cb.__pyx_capi__["sgemm"], cb.__pyx_capi__["dgemm"])]


def _bind():
    want = os.environ.get("ONNXJIT_BLAS", "auto").lower()
    found = _mkl() if want in ("auto", "mkl") else None
    if found is not None:
        _keep.append(found[0])
        addresses = [ctypes.cast(f, ctypes.c_void_p).value for f in found[1]]
        name = "mkl"
    else:
        addresses, name = _openblas(), "openblas"
    for sym, addr in zip(SYMBOLS, addresses):
        ll.add_symbol(sym, addr)
    return name


_keep: list = []          # the loaded MKL library, kept alive for the process
name = _bind()            # "mkl" or "openblas": what onnxjit_sgemm calls in this process
