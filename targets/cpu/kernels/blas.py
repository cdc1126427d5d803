"""out = a @ b for the kernel libraries: float32 through our own kernel (sgemm.py), the rest
through the GEMM runtime/blas.py binds (MKL where installed, else scipy's OpenBLAS), called
by symbol name so compiled code caches.

Rows or columns of a and b may be strided (BLAS leading dimensions, transposed views
such as w.T pass as they are); out's rows may be strided. The kernels never pass an
operand strided along both dims; gemm refuses one with a ValueError."""
import numpy as np
from numba import types

import runtime.blas  # noqa: F401 (binds the symbols below before any kernel links)

from .jit import njit
from .sgemm import NR, SIGNATURE as _OWN_SIGNATURE, SYMBOL as _OWN_SYMBOL, clamp

_I = types.intp          # each Fortran argument is a pointer
_GEMM_SIG = types.void(_I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I)
_sgemm = types.ExternalFunction("onnxjit_sgemm", _GEMM_SIG)
_dgemm = types.ExternalFunction("onnxjit_dgemm", _GEMM_SIG)
_own_sgemm = types.ExternalFunction(_OWN_SYMBOL, _OWN_SIGNATURE)
_N, _T = 78, 84          # ord("N"), ord("T")

# float32 products at least this tall and wide take sgemm.py's kernel (1.6-2.5x the BLAS on
# the suite's GEMMs on the Zen 5 machine); thinner ones, matrix-vector products above all,
# stay with the BLAS (1000x256 @ a vector: BLAS 13 us, an 8-row tile for one row 113).
OWN_MIN_M = 4
OWN_MIN_N = 16


@njit(cache=True, error_model="numpy", inline="always")
def _operand(x, rows, cols):
    """(trans code, leading dimension) of x (rows x cols, row-major view wanted) as a
    column-major BLAS operand of its transpose; trans 0: x fits neither layout."""
    s0, s1, isz = x.strides[0], x.strides[1], x.itemsize
    if cols == 1 or s1 == isz:
        return _N, max(s0 // isz if rows > 1 else cols, cols, 1)
    if rows == 1 or s0 == isz:
        return _T, max(s1 // isz if cols > 1 else rows, rows, 1)
    return 0, 0


# alpha = 1, beta = 0 as the BLAS reads them (Numba embeds global arrays as constants).
_SCALARS32 = np.array([1.0, 0.0], np.float32)
_SCALARS64 = np.array([1.0, 0.0], np.float64)


@njit(cache=True, error_model="numpy")
def _blas(double, ta, tb, M, N, K, a, lda, b, ldb, c, ldc):
    """The BLAS call on addresses: one compiled copy serves every dtype and layout."""
    # Row-major C = A B is column-major C^T = B^T A^T: b goes first.
    p = np.empty(8, np.int32)
    p[0] = tb
    p[1] = ta
    p[2] = N
    p[3] = M
    p[4] = K
    p[5] = ldb
    p[6] = lda
    p[7] = ldc
    d = p.ctypes.data
    if double:
        e = _SCALARS64.ctypes.data
        _dgemm(d, d + 4, d + 8, d + 12, d + 16, e, b, d + 20, a, d + 24, e + 8, c, d + 28)
    else:
        e = _SCALARS32.ctypes.data
        _sgemm(d, d + 4, d + 8, d + 12, d + 16, e, b, d + 20, a, d + 24, e + 4, c, d + 28)
    # p is used after the call: Numba frees an array after its last use, and the BLAS
    # reads it through addresses Numba cannot see.
    return p[7]


@njit(cache=True, error_model="numpy")
def _takes_own(a, b, out):
    """Whether a (M, K) @ b (K, N) -> out runs on sgemm.py's kernel."""
    return (out.itemsize == 4 and a.shape[0] >= OWN_MIN_M and b.shape[1] >= OWN_MIN_N and a.shape[1] > 0
            and a.strides[0] >= 0 and a.strides[1] >= 0 and b.strides[0] >= 0 and b.strides[1] >= 0
            and out.strides[1] == 4)


@njit(cache=True, error_model="numpy")
def gemm_epilogue(a, b, out, bias, res, lo, hi):
    """out = clamp(a @ b + bias[:, None] [+ res], lo, hi) (sgemm.clamp: Relu is lo 0, hi
    inf). On sgemm.py's kernel the epilogue
    runs in registers as each tile is stored, else after the BLAS, row by row. res: like out,
    or size 0."""
    M, N = out.shape
    has_res = res.size > 0
    if _takes_own(a, b, out) and (not has_res or res.strides[1] == 4):
        b32 = np.ascontiguousarray(bias)
        _own_sgemm(M, N, a.shape[1], a.ctypes.data, a.strides[0] // 4, a.strides[1] // 4, b.ctypes.data,
                   b.strides[0] // 4, b.strides[1] // 4, 0, out.ctypes.data, out.strides[0] // 4,
                   b32.ctypes.data, res.ctypes.data if has_res else 0, res.strides[0] // 4 if has_res else 0,
                   np.float32(lo), np.float32(hi))
        return b32[0]     # used after the call: alive while the kernel reads it
    gemm(a, b, out)
    for m in range(M):
        row = out[m]
        for j in range(N):
            v = row[j] + bias[m]
            if has_res:
                v = v + res[m, j]
            row[j] = clamp(v, lo, hi)
    return bias[0]


@njit(cache=True, error_model="numpy")
def gemm(a, b, out):
    """out (M, N) = a (M, K) @ b (K, N), float32 or float64 (as np.dot: all three one dtype)."""
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape[0] != M or out.shape[1] != N:
        raise ValueError("gemm: shapes do not match")
    if M == 0 or N == 0:
        return
    if K == 0:
        for i in range(M):
            for j in range(N):
                out[i, j] = 0
        return
    isz = out.itemsize
    if _takes_own(a, b, out):
        _own_sgemm(M, N, K, a.ctypes.data, a.strides[0] // 4, a.strides[1] // 4, b.ctypes.data,
                   b.strides[0] // 4, b.strides[1] // 4, 0, out.ctypes.data, out.strides[0] // 4,
                   0, 0, 0, np.float32(0), np.float32(0))
        return
    ta, lda = _operand(a, M, K)
    tb, ldb = _operand(b, K, N)
    if ta == 0 or tb == 0 or (N > 1 and out.strides[1] != isz):
        raise ValueError("gemm: an operand is strided along both dims (no BLAS layout)")
    ldc = max(out.strides[0] // isz if M > 1 else N, N, 1)
    _blas(isz == 8, ta, tb, M, N, K, a.ctypes.data, lda, b.ctypes.data, ldb, out.ctypes.data, ldc)


@njit(cache=True, error_model="numpy")
def gemm_packed(a, bp, out, bias, res, lo, hi):
    """out (M, N) = a (M, K) @ B, float32, B as sgemm.pack_panels laid it out (bp, flat);
    where bias has a size, out = clamp(a @ B + bias[:, None] [+ res], lo, hi) in registers
    as gemm_epilogue's (res: like out, or size 0)."""
    M, K = a.shape
    N = out.shape[1]
    if bp.size != (N + NR - 1) // NR * K * NR or out.shape[0] != M:
        raise ValueError("gemm_packed: shapes do not match")
    if M == 0 or N == 0:
        return bp[0]
    has_res = res.size > 0
    if K == 0 or a.strides[0] < 0 or a.strides[1] < 0 or out.strides[1] != 4 or (has_res and res.strides[1] != 4):
        raise ValueError("gemm_packed: operands the kernel does not take")
    b32 = np.ascontiguousarray(bias)
    _own_sgemm(M, N, K, a.ctypes.data, a.strides[0] // 4, a.strides[1] // 4, bp.ctypes.data, -1, 0, 0,
               out.ctypes.data, out.strides[0] // 4, b32.ctypes.data if bias.size > 0 else 0,
               res.ctypes.data if has_res else 0, res.strides[0] // 4 if has_res else 0, np.float32(lo), np.float32(hi))
    return bp[0] + (b32[0] if bias.size > 0 else 0)     # used after the call: alive while the kernel reads them


@njit(cache=True, error_model="numpy")
def gemm_implicit(a, x, offs, out, bias, res, lo, hi):
    """out (M, N) = a (M, K) @ B, float32, where B[k, j] = x[offs[k] + j] is never built: the
    implicit GEMM of a convolution, offs its taps' offsets in the zero-bordered image x (flat)
    and j the output position there (or, for a 1x1 conv, the channels' rows of the image
    itself). bias, res, lo, hi: gemm_packed's epilogue."""
    M, K = a.shape
    N = out.shape[1]
    if offs.shape[0] != K or out.shape[0] != M:
        raise ValueError("gemm_implicit: shapes do not match")
    if M == 0 or N == 0:
        return 0.0
    has_res = res.size > 0
    if (K == 0 or a.strides[0] < 0 or a.strides[1] < 0 or out.strides[1] != 4 or (has_res and res.strides[1] != 4)
            or x.strides[0] != 4):
        raise ValueError("gemm_implicit: operands the kernel does not take")
    if offs.min() < 0 or offs.max() + N > x.size:
        raise ValueError("gemm_implicit: a row of B runs past x")
    b32 = np.ascontiguousarray(bias)
    _own_sgemm(M, N, K, a.ctypes.data, a.strides[0] // 4, a.strides[1] // 4, x.ctypes.data, 0, 0, offs.ctypes.data,
               out.ctypes.data, out.strides[0] // 4, b32.ctypes.data if bias.size > 0 else 0,
               res.ctypes.data if has_res else 0, res.strides[0] // 4 if has_res else 0, np.float32(lo), np.float32(hi))
    return x[0] + offs[0] + (b32[0] if bias.size > 0 else 0)     # used after the call: alive while the kernel reads them


@njit(cache=True, error_model="numpy")
def dot(a, b, out):
    """np.dot(a, b, out) for 1- or 2-D a and b: a vector a is one row, a vector b one column."""
    if a.ndim == 1 and b.ndim == 1:
        gemm(a[None, :], b[:, None], out.reshape((1, 1)))
    elif a.ndim == 1:
        gemm(a[None, :], b, out[None, :])
    elif b.ndim == 1:
        gemm(a, b[:, None], out[:, None])
    else:
        gemm(a, b, out)
