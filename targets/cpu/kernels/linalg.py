"""Matrix products. Float work goes to BLAS through blas.dot (MKL or scipy's OpenBLAS)."""
import numpy as np
from numba import prange

from .blas import dot, gemm_packed as _gemm_packed
from .gemv_acc import accumulate, tail as _gemv_tail, VW
from .jit import njit
from .sgemm import NR


@njit(cache=True, error_model="numpy")
def gemm(a, b, out):
    """out = a @ b (matrix or vector a or b) in the single-threaded BLAS of runtime/blas.py.
    Called from a graph that runs as plain Python too, where a bare np.dot would be numpy's
    own BLAS and its own thread pool (on a loaded 2-core machine that pool turned a 0.7 ms
    GEMM into 16 ms)."""
    dot(a, b, out)


@njit(cache=True, error_model="numpy", parallel=True)
def gemm_rows(a, b, out, parts):
    """gemm split into `parts` bands of rows, one single-thread BLAS call per thread."""
    m = a.shape[0]
    for p in prange(parts):
        dot(a[p * m // parts:(p + 1) * m // parts], b, out[p * m // parts:(p + 1) * m // parts])


@njit(cache=True, error_model="numpy", parallel=True)
def gemm_cols(a, b, out, parts):
    """gemm of one row (a vector a) with b's columns split into `parts` bands, one per
    thread: each thread reads only its share of b, and on every call the same share, so a
    weight matrix too big for one core's L2 stays in the L2s of all of them."""
    n = b.shape[1]
    for p in prange(parts):
        dot(a, b[:, p * n // parts:(p + 1) * n // parts], out[p * n // parts:(p + 1) * n // parts])


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot_rows(x, wt, out, j0, j1):
    """out[j] = x . wt[j] for j0 <= j < j1, float32 (the sums vectorised: reassociated). Not
    inlined: Numba inlines a function's IR, and its caller's flags would compile it."""
    for j in range(j0, j1):
        s = np.float32(0)
        for kk in range(wt.shape[1]):
            s += x[kk] * wt[j, kk]
        out[j] = s


@njit(cache=True, error_model="numpy")
def _gemv_t_shapes(x, wt, out):
    """Refuses all but x (k,), wt (n, k), out (n,): the kernels index them unchecked."""
    if wt.shape[1] != x.shape[0] or wt.shape[0] != out.shape[0]:
        raise ValueError("gemv_t: shapes do not match")


@njit(cache=True, error_model="numpy")
def gemv_t(x, wt, out):
    """out (n,) = x (k,) @ wt.T for a weight kept transposed, wt (n, k) C-contiguous, float32:
    one contiguous dot product an output, so the weight streams through once in order. A
    one-row MatMul by a constant reads its whole weight from memory each call (the bench MLP:
    2.6 MB, 50 ms apart): the BLAS's sgemm took ~25% longer over the same bytes."""
    _gemv_t_shapes(x, wt, out)
    _dot_rows(x, wt, out, 0, wt.shape[0])


@njit(cache=True, error_model="numpy")
def gemv_packed(x, bp, tail, out, bands):
    """out (n,) = x (k,) @ B for a float32 constant B laid out by gemv_acc.pack_bands (bp, tail,
    bands): each band's columns held in vector registers while its K rows stream past in
    order (gemv_acc's kernel), no sum across lanes. The bench MLP's 784x512 and 512x512 layers,
    their 2.6 MB read from L3 each call: 27.9 us, 95 GB/s, against 35.8-41.6 us for one dot
    product a column over the weight kept transposed (gemv_t: a sum across lanes an output,
    and 784 = 49 vectors left a scalar remainder in each)."""
    _gemv_packed_check(x, bp, tail, out, bands)
    for p in range(bands.shape[0]):
        _gemv_band(x, bp, tail, out, bands, p)


@njit(cache=True, error_model="numpy", parallel=True)
def gemv_packed_par(x, bp, tail, out, bands):
    """gemv_packed with its bands one a thread: each core streams its own run of bp."""
    _gemv_packed_check(x, bp, tail, out, bands)
    for p in prange(bands.shape[0]):
        _gemv_band(x, bp, tail, out, bands, np.int64(p))   # p is uint64 in the gufunc: one compile, not two


@njit(cache=True, error_model="numpy")
def _gemv_packed_check(x, bp, tail, out, bands):
    """Refuses a packing that does not match x and out (before any thread starts: the kernel
    indexes unchecked, and an exception inside a parallel loop is not raised cleanly)."""
    k, full, nb = x.shape[0], out.shape[0] - tail.shape[1], bands.shape[0]
    ok = (nb > 0 and bands.shape[1] == 3 and bands[nb - 1, 1] == full and (tail.shape[1] == 0 or tail.shape[0] == k)
          and (k < 2 or x.strides[0] == 4) and (out.shape[0] < 2 or out.strides[0] == 4))
    end = 0
    for p in range(nb):
        lo, hi, off = bands[p, 0], bands[p, 1], bands[p, 2]
        ok = ok and lo == end and lo <= hi and (hi - lo) % VW == 0 and off >= 0 and off + k * (hi - lo) <= bp.size
        end = hi
    if not ok:
        raise ValueError("gemv_packed: the packing does not match x and out")


@njit(cache=True, error_model="numpy")
def _gemv_band(x, bp, tail, out, bands, p):
    """Band p of gemv_packed (the last band also the tail's columns; bands checked before)."""
    k, full, nb = x.shape[0], out.shape[0] - tail.shape[1], bands.shape[0]
    lo, hi, off = bands[p, 0], bands[p, 1], bands[p, 2]
    g = out[lo:hi]
    g[:] = 0
    accumulate(bp[off:off + k * (hi - lo)], x, g)
    if p == nb - 1 and tail.shape[1] > 0:
        _gemv_tail(tail, x, out[full:])


@njit(cache=True, error_model="numpy", parallel=True)
def gemm_col_bands(a, b, out, parts):
    """gemm (a matrix a) split into `parts` bands of columns, whole NR-column panels, one per
    thread: each thread packs only its band of b for the micro-kernel, where a row band packs
    all of it (128x256x1024 at 2 threads on the Zen 3: row bands spent ~18% of each thread
    packing b again)."""
    n = b.shape[1]
    for p in prange(parts):
        lo, hi = _band(n, np.int64(p), parts)
        dot(a, b[:, lo:hi], out[:, lo:hi])


@njit(cache=True, error_model="numpy", inline="always")
def _band(n, p, parts):
    """Columns lo .. hi of band p of `parts`: edges on the micro-kernel's NR-column panels."""
    lo = (p * n // parts) // NR * NR
    return lo, (((p + 1) * n // parts) // NR * NR if p < parts - 1 else n)


@njit(cache=True, error_model="numpy")
def gemm_packed(a, bp, out):
    """out = a @ B, B a float32 constant packed at compile time (sgemm.pack_panels)."""
    _gemm_packed(a, bp, out, np.empty(0, np.float32), np.empty((0, 0), np.float32), 0.0, 0.0)


@njit(cache=True, error_model="numpy", parallel=True)
def gemm_packed_col_bands(a, bp, out, parts):
    """gemm_packed in `parts` column bands, one per thread (as gemm_col_bands): a band of
    whole panels is a contiguous slice of bp."""
    n, k = out.shape[1], a.shape[1]
    for p in prange(parts):
        lo, hi = _band(n, np.int64(p), parts)
        gemm_packed(a, bp[lo * k:(hi + NR - 1) // NR * NR * k], out[:, lo:hi])


@njit(cache=True, error_model="numpy")
def matmul_batched(a, b, out, a_index, b_index):
    """out[i] = a[a_index[i]] @ b[b_index[i]] on (batch, m, k) x (batch, k, n) views."""
    for i in range(out.shape[0]):
        dot(a[a_index[i]], b[b_index[i]], out[i])


@njit(cache=True, error_model="numpy", parallel=True)
def matmul_batched_par(a, b, out, a_index, b_index):
    """matmul_batched with the batch spread over the threads."""
    for i in prange(out.shape[0]):
        dot(a[a_index[i]], b[b_index[i]], out[i])


@njit(cache=True, error_model="numpy")
def matmul_batched_int(a, b, out, a_index, b_index):
    """Integer MatMul (BLAS is float-only): plain loops, accumulating in the out dtype."""
    for i in range(out.shape[0]):
        x = a[a_index[i]]
        y = b[b_index[i]]
        for r in range(out.shape[1]):
            for c in range(out.shape[2]):
                out[i, r, c] = 0
            for k in range(x.shape[1]):
                v = x[r, k]
                for c in range(out.shape[2]):
                    out[i, r, c] += v * y[k, c]


@njit(cache=True, error_model="numpy")
def det_batched(x, out):
    """out[i] = det(x[i]) on a (batch, n, n) view: LU with partial pivoting in float64."""
    n = x.shape[1]
    a = np.empty((n, n), np.float64)
    for b in range(x.shape[0]):
        for r in range(n):
            for c in range(n):
                a[r, c] = x[b, r, c]
        d = 1.0
        for k in range(n):
            p = k
            for r in range(k + 1, n):
                if abs(a[r, k]) > abs(a[p, k]):
                    p = r
            if a[p, k] == 0.0:
                d = 0.0
                break
            if p != k:
                d = -d
                for c in range(n):
                    a[k, c], a[p, c] = a[p, c], a[k, c]
            d *= a[k, k]
            for r in range(k + 1, n):
                f = a[r, k] / a[k, k]
                for c in range(k + 1, n):
                    a[r, c] -= f * a[k, c]
        out[b] = d
