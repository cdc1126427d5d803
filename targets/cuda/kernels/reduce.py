"""CUDA row reductions, mirroring targets/cpu/kernels/reduce.py (same launcher names,
argument order and numerics): the caller moves the reduced axes last and views the
tensor as a C-contiguous (rows, n) device array.

Shape of every row kernel: one block per row (blocks loop over rows with a stride of
gridDim, so any grid size is correct), threads stride over the row accumulating in
float64 (floats) or int64 (integers) like the CPU, then a shared-memory tree down to one
warp and warp shuffles for the last 32 lanes. The simulator has no shuffles, so there the
tree runs down to one lane. Rows of any length, n == 0 included (the reduction's identity).

Also here, because they are the same block reductions (a kernel library cannot import
another): ArgMax/ArgMin (`arg_reduce`) and CumSum/CumProd (`cumulative`) with the
(outer, n, inner) conventions of targets/cpu/kernels/indexing.py, and
InstanceNormalization (`instance_norm`) with the (N, C, S) convention of
targets/cpu/kernels/nn.py.

Known limits: uint64 values >= 2**63 are compared/summed as wrapped int64; an ArgMax over an
empty axis writes nothing (the CPU raises: reject it when lowering).
"""
import math

import numpy as np
from numba import config, cuda, float64, int64

_SIM = bool(config.ENABLE_CUDASIM)
BLOCK = 8 if _SIM else 256      # threads per block, a power of two >= 2 * _WARP on a GPU
GRID = 2 if _SIM else 4096      # most blocks per launch; kernels loop over the rest
_WARP = 32
_SHUFFLE = not _SIM             # the simulator implements no shfl_*_sync
_TREE_STOP = _WARP if _SHUFFLE else 1
_FULL = 0xFFFFFFFF

SOFTMAX, LOGSOFTMAX, HARDMAX = range(3)


# --------------------------------------------------------------------------- scalar pieces


@cuda.jit(device=True)
def _add(a, b):
    return a + b


@cuda.jit(device=True)
def _mul(a, b):
    return a * b


@cuda.jit(device=True)
def _max_nan(a, b):
    """max propagating NaN (like the CPU's `v > acc or v != v`)."""
    return a if (a != a or a > b) else b


@cuda.jit(device=True)
def _min_nan(a, b):
    return a if (a != a or a < b) else b


@cuda.jit(device=True)
def _max_skip_nan(a, b):
    """max ignoring NaN, as the CPU's `if x > m: m = x` does in softmax / logsumexp."""
    return b if b > a else a


@cuda.jit(device=True)
def _ident(v):
    return v


@cuda.jit(device=True)
def _abs(v):
    return abs(v)


@cuda.jit(device=True)
def _square(v):
    return v * v


@cuda.jit(device=True)
def _log(v):
    """np.log semantics (log(0) = -inf, log(<0) = nan) without math's domain errors."""
    if v > 0:
        return math.log(v)
    return -math.inf if v == 0 else math.nan


@cuda.jit(device=True)
def _keep(acc, n):
    return acc


@cuda.jit(device=True)
def _mean(acc, n):
    return acc / n if n else math.nan


@cuda.jit(device=True)
def _sqrt(acc, n):
    return math.sqrt(acc)


@cuda.jit(device=True)
def _logacc(acc, n):
    return _log(acc)


# --------------------------------------------------------------------------- block reductions


def _block_reducer(combine):
    """A device function giving every thread of the block combine() over the block's `v`s.
    `sh` is the caller's shared array of BLOCK accumulators (its dtype is the accumulator's)."""
    @cuda.jit(device=True)
    def reduce(sh, v):
        tid = cuda.threadIdx.x
        sh[tid] = v
        cuda.syncthreads()
        s = BLOCK // 2
        while s >= _TREE_STOP:
            if tid < s:
                sh[tid] = combine(sh[tid], sh[tid + s])
            cuda.syncthreads()
            s //= 2
        if _SHUFFLE:
            if tid < _WARP:
                w = sh[tid]
                off = _WARP // 2
                while off > 0:
                    w = combine(w, cuda.shfl_down_sync(_FULL, w, off))
                    off //= 2
                if tid == 0:
                    sh[0] = w
            cuda.syncthreads()
        total = sh[0]
        cuda.syncthreads()      # sh is reused by the next reduction
        return total
    return reduce


_block_sum = _block_reducer(_add)
_block_max_skip_nan = _block_reducer(_max_skip_nan)


@cuda.jit(device=True)
def _arg_better(v, i, w, k, is_max, last):
    """Does (w, k) beat (v, i)? A total order (so the tree may combine in any order) that
    reproduces the CPU's sequential scan: index -1 marks "no value"; NaN wins like
    np.argmax; ties and NaN vs NaN go to the lower index, or the higher with `last`."""
    if k < 0:
        return False
    if i < 0:
        return True
    vn = v != v
    wn = w != w
    if vn or wn:
        if vn and wn:
            return (k > i) == last
        return wn
    if w == v:
        return (k > i) == last
    return (w > v) == is_max


@cuda.jit(device=True)
def _block_arg(shv, shi, v, i, is_max, last):
    """Index of the best (value, index) pair of the block, given to every thread."""
    tid = cuda.threadIdx.x
    shv[tid] = v
    shi[tid] = i
    cuda.syncthreads()
    s = BLOCK // 2
    while s >= _TREE_STOP:
        if tid < s and _arg_better(shv[tid], shi[tid], shv[tid + s], shi[tid + s], is_max, last):
            shv[tid] = shv[tid + s]
            shi[tid] = shi[tid + s]
        cuda.syncthreads()
        s //= 2
    if _SHUFFLE:
        if tid < _WARP:
            v = shv[tid]
            i = shi[tid]
            off = _WARP // 2
            while off > 0:
                w = cuda.shfl_down_sync(_FULL, v, off)
                k = cuda.shfl_down_sync(_FULL, i, off)
                if _arg_better(v, i, w, k, is_max, last):
                    v = w
                    i = k
                off //= 2
            if tid == 0:
                shi[0] = i
        cuda.syncthreads()
    best = shi[0]
    cuda.syncthreads()
    return best


# --------------------------------------------------------------------------- launch helpers


def _launch_rows(kernel, rows, *args):
    """One block per row (at most GRID blocks; the kernel loops over the rest)."""
    if rows > 0:
        kernel[min(rows, GRID), BLOCK](*args)


def _launch_flat(kernel, count, *args):
    """One thread per item, grid-stride."""
    if count > 0:
        kernel[min((count + BLOCK - 1) // BLOCK, GRID), BLOCK](*args)


def _is_float(a):
    return np.dtype(a.dtype).kind in "fc"


# --------------------------------------------------------------------------- Reduce*


_ACC = {}  # fold kernel -> numpy type of its accumulator (and of its `ident` argument)


def _fold(acc_t, load, combine, finish):
    """A row reduction: out[r] = finish(combine over j of load(acc_t(x[r, j])), n), starting
    from `ident` (a kernel argument of type acc_t, so one kernel serves the max / min
    identities of every integer width)."""
    block_reduce = _block_reducer(combine)

    @cuda.jit
    def kernel(x, out, ident):
        sh = cuda.shared.array(BLOCK, acc_t)
        rows, n = x.shape
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            acc = ident
            for j in range(tid, n, BLOCK):
                acc = combine(acc, load(acc_t(x[r, j])))
            acc = block_reduce(sh, acc)
            if tid == 0:
                out[r] = finish(acc, n)
    _ACC[kernel] = np.float64 if acc_t == float64 else np.int64
    return kernel


def _zero(dt):
    return 0


def _one(dt):
    return 1


def _lowest(dt):
    """ReduceMax's identity (an empty row's result): -inf, or the dtype's minimum."""
    dt = np.dtype(dt)
    return -np.inf if dt.kind == "f" else 0 if dt.kind in "bu" else np.iinfo(dt).min


def _highest(dt):
    dt = np.dtype(dt)
    return np.inf if dt.kind == "f" else 1 if dt.kind == "b" else min(np.iinfo(dt).max, np.iinfo(np.int64).max)


def _rows_launcher(kernel_f, kernel_i, ident):
    """launch(x, out): kernel_f for float x, kernel_i for integer x, from ident(x.dtype)."""
    def launch(x, out):
        kernel = kernel_f if _is_float(x) else kernel_i
        _launch_rows(kernel, x.shape[0], x, out, _ACC[kernel](ident(x.dtype)))
    return launch


# Like the CPU, the sum family accumulates every dtype in float64 (integer ReduceSum is
# int_sum_rows, exact in int64); prod / max / min keep integers exact in int64.
_sum_f = _fold(float64, _ident, _add, _keep)
_mean_f = _fold(float64, _ident, _add, _mean)
_l1_f = _fold(float64, _abs, _add, _keep)
_l2_f = _fold(float64, _square, _add, _sqrt)
_logsum_f = _fold(float64, _ident, _add, _logacc)
_sumsquare_f = _fold(float64, _square, _add, _keep)
_sum_i = _fold(int64, _ident, _add, _keep)
_prod_f = _fold(float64, _ident, _mul, _keep)
_prod_i = _fold(int64, _ident, _mul, _keep)
_max_f = _fold(float64, _ident, _max_nan, _keep)
_max_i = _fold(int64, _ident, _max_nan, _keep)
_min_f = _fold(float64, _ident, _min_nan, _keep)
_min_i = _fold(int64, _ident, _min_nan, _keep)

sum_rows = _rows_launcher(_sum_f, _sum_f, _zero)
mean_rows = _rows_launcher(_mean_f, _mean_f, _zero)
l1_rows = _rows_launcher(_l1_f, _l1_f, _zero)
l2_rows = _rows_launcher(_l2_f, _l2_f, _zero)
logsum_rows = _rows_launcher(_logsum_f, _logsum_f, _zero)
sumsquare_rows = _rows_launcher(_sumsquare_f, _sumsquare_f, _zero)
int_sum_rows = _rows_launcher(_sum_i, _sum_i, _zero)
prod_rows = _rows_launcher(_prod_f, _prod_i, _one)
max_rows = _rows_launcher(_max_f, _max_i, _lowest)
min_rows = _rows_launcher(_min_f, _min_i, _highest)


@cuda.jit
def _logsumexp_kernel(x, out):
    """Two block passes per row: the max (ignoring NaN, as the CPU), then sum exp(x - max)."""
    sh = cuda.shared.array(BLOCK, float64)
    rows, n = x.shape
    tid = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        m = -math.inf
        for j in range(tid, n, BLOCK):
            m = _max_skip_nan(m, float64(x[r, j]))
        m = _block_max_skip_nan(sh, m)
        if m == -math.inf or m == math.inf:
            m = 0.0
        s = 0.0
        for j in range(tid, n, BLOCK):
            s += math.exp(float64(x[r, j]) - m)
        s = _block_sum(sh, s)
        if tid == 0:
            out[r] = _log(s) + m


def logsumexp_rows(x, out):
    _launch_rows(_logsumexp_kernel, x.shape[0], x, out)


# --------------------------------------------------------------------------- Softmax family


@cuda.jit
def _softmax_kernel(x, out, kind):
    """Softmax / LogSoftmax: block max then block sum of exp(x - max), in float64.
    Hardmax: first index of the largest non-NaN value (0 if x[r, 0] is NaN), as the CPU."""
    sh = cuda.shared.array(BLOCK, float64)
    shi = cuda.shared.array(BLOCK, int64)
    rows, n = x.shape
    tid = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        if kind == HARDMAX:
            bv = -math.inf
            bi = -1
            for j in range(tid, n, BLOCK):
                v = float64(x[r, j])
                if v == v and _arg_better(bv, bi, v, j, True, False):
                    bv = v
                    bi = j
            best = _block_arg(sh, shi, bv, bi, True, False)
            if n and x[r, 0] != x[r, 0]:
                best = 0
            for j in range(tid, n, BLOCK):
                out[r, j] = 1 if j == best or (best < 0 and j == 0) else 0
            continue
        m = -math.inf
        for j in range(tid, n, BLOCK):
            m = _max_skip_nan(m, float64(x[r, j]))
        m = _block_max_skip_nan(sh, m)
        s = 0.0
        for j in range(tid, n, BLOCK):
            s += math.exp(float64(x[r, j]) - m)
        s = _block_sum(sh, s)
        if kind == SOFTMAX:
            for j in range(tid, n, BLOCK):
                out[r, j] = math.exp(float64(x[r, j]) - m) / s
        else:
            ls = _log(s)
            for j in range(tid, n, BLOCK):
                out[r, j] = float64(x[r, j]) - m - ls


def softmax_rows(x, out, kind):
    """Softmax / LogSoftmax / Hardmax over the last axis of a (rows, n) view."""
    _launch_rows(_softmax_kernel, x.shape[0], x, out, kind)


# --------------------------------------------------------------------------- normalisations


@cuda.jit(device=True)
def _mean_inv(sh, row, n, tid, eps):
    """Two-pass float64 mean and 1/sqrt(var + eps) of row[:n] (the CPU's formula)."""
    s = 0.0
    for j in range(tid, n, BLOCK):
        s += float64(row[j])
    mean = _block_sum(sh, s) / n
    v = 0.0
    for j in range(tid, n, BLOCK):
        d = float64(row[j]) - mean
        v += d * d
    return mean, 1.0 / math.sqrt(_block_sum(sh, v) / n + eps)


@cuda.jit
def _layernorm_kernel(x, scale, bias, out, mean_out, inv_out, eps):
    sh = cuda.shared.array(BLOCK, float64)
    rows, n = x.shape
    tid = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        mean, inv = _mean_inv(sh, x[r], n, tid, eps)
        if tid == 0:
            mean_out[r] = mean
            inv_out[r] = inv
        for j in range(tid, n, BLOCK):
            out[r, j] = (x[r, j] - mean) * inv * scale[j] + bias[j]


def layernorm_rows(x, scale, bias, out, mean_out, inv_out, eps):
    """LayerNormalization over the last axis of a (rows, n) view; scale/bias of length n."""
    _launch_rows(_layernorm_kernel, x.shape[0], x, scale, bias, out, mean_out, inv_out, float(eps))


@cuda.jit
def _instance_norm_kernel(x, scale, bias, out, eps):
    sh = cuda.shared.array(BLOCK, float64)
    N, C, S = x.shape
    tid = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, N * C, cuda.gridDim.x):
        b = r // C
        c = r % C
        mean, inv = _mean_inv(sh, x[b, c], S, tid, eps)
        a = float64(scale[c]) * inv
        shift = bias[c] - mean * a
        for j in range(tid, S, BLOCK):
            out[b, c, j] = x[b, c, j] * a + shift


def instance_norm(x, scale, bias, out, eps):
    """ONNX InstanceNormalization on x (N, C, S): per (n, c) y = scale[c] * (x - mean) / sqrt(var + eps) + bias[c]."""
    _launch_rows(_instance_norm_kernel, x.shape[0] * x.shape[1], x, scale, bias, out, float(eps))


# --------------------------------------------------------------------------- ArgMax / ArgMin


def _arg_rows_kernel(acc_t):
    """inner == 1: a contiguous row per block, tree over (value, index) pairs."""
    @cuda.jit
    def kernel(x3, out2, is_max, last):
        shv = cuda.shared.array(BLOCK, acc_t)
        shi = cuda.shared.array(BLOCK, int64)
        outer, n, _ = x3.shape
        tid = cuda.threadIdx.x
        for o in range(cuda.blockIdx.x, outer, cuda.gridDim.x):
            bv = acc_t(0)
            bi = -1
            for j in range(tid, n, BLOCK):
                v = acc_t(x3[o, j, 0])
                if _arg_better(bv, bi, v, j, is_max, last):
                    bv = v
                    bi = j
            best = _block_arg(shv, shi, bv, bi, is_max, last)
            if tid == 0:
                out2[o, 0] = best
    return kernel


_arg_rows_f = _arg_rows_kernel(float64)
_arg_rows_i = _arg_rows_kernel(int64)


@cuda.jit
def _arg_cols_kernel(x3, out2, is_max, last):
    """inner > 1: one thread per (outer, inner) column scanning n, reads coalesced over inner."""
    outer, n, inner = x3.shape
    for c in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        o = c // inner
        t = c % inner
        bv = x3[o, 0, t]
        bi = 0
        for j in range(1, n):
            v = x3[o, j, t]
            if _arg_better(bv, bi, v, j, is_max, last):
                bv = v
                bi = j
        out2[o, t] = bi


def arg_reduce(x3, out2, is_max, select_last_index):
    """ArgMax/ArgMin over the middle axis of (outer, n, inner) with np.argmax NaN semantics;
    out2 int64 (outer, inner). n must be > 0."""
    outer, n, inner = x3.shape
    if n == 0:
        return
    if inner == 1:
        kernel = _arg_rows_f if _is_float(x3) else _arg_rows_i
        _launch_rows(kernel, outer, x3, out2, bool(is_max), bool(select_last_index))
    else:
        _launch_flat(_arg_cols_kernel, outer * inner, x3, out2, bool(is_max), bool(select_last_index))


# --------------------------------------------------------------------------- CumSum / CumProd


@cuda.jit
def _cumulative_kernel(x3, out3, exclusive, reverse, is_prod):
    """One thread per (outer, inner) column, scanning n in the CPU's order and in the tensor
    dtype (bit-identical to the CPU; integers wrap). A parallel scan for long single rows is
    left for later."""
    outer, n, inner = x3.shape
    first = n - 1 if reverse else 0
    step = -1 if reverse else 1
    for c in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        o = c // inner
        t = c % inner
        if exclusive:
            out3[o, first, t] = 1 if is_prod else 0
        else:
            out3[o, first, t] = x3[o, first, t]
        prev = first
        for m in range(1, n):
            j = first + step * m
            src = prev if exclusive else j
            if is_prod:
                out3[o, j, t] = out3[o, prev, t] * x3[o, src, t]
            else:
                out3[o, j, t] = out3[o, prev, t] + x3[o, src, t]
            prev = j


def cumulative(x3, out3, exclusive, reverse, is_prod):
    """CumSum / CumProd along the middle axis of (outer, n, inner), in the tensor dtype."""
    outer, n, inner = x3.shape
    if n == 0:
        return
    _launch_flat(_cumulative_kernel, outer * inner, x3, out3, bool(exclusive), bool(reverse), bool(is_prod))


# --------------------------------------------------------------------------- AOT signatures


def _sigs(pattern, dtypes):
    return [pattern.format(t=t) for t in dtypes]


_FLOATS = ("float32", "float64")
_INTS = ("int32", "int64")
_ROW = "void({t}[:, ::1], {t}[::1], %s)"
SIGNATURES = {
    **{name: _sigs(_ROW % "float64", _FLOATS + _INTS)
       for name in ("_sum_f", "_mean_f", "_l1_f", "_l2_f", "_logsum_f", "_sumsquare_f")},
    **{name: _sigs(_ROW % "float64", _FLOATS) for name in ("_prod_f", "_max_f", "_min_f")},
    **{name: _sigs(_ROW % "int64", _INTS) for name in ("_sum_i", "_prod_i", "_max_i", "_min_i")},
    "_logsumexp_kernel": _sigs("void({t}[:, ::1], {t}[::1])", _FLOATS),
    "_softmax_kernel": _sigs("void({t}[:, ::1], {t}[:, ::1], int64)", _FLOATS),
    "_layernorm_kernel": _sigs("void({t}[:, ::1], {t}[::1], {t}[::1], {t}[:, ::1], {t}[::1], {t}[::1], float64)",
                               _FLOATS),
    "_instance_norm_kernel": _sigs("void({t}[:, :, ::1], {t}[::1], {t}[::1], {t}[:, :, ::1], float64)", _FLOATS),
    "_arg_rows_f": _sigs("void({t}[:, :, ::1], int64[:, ::1], boolean, boolean)", _FLOATS),
    "_arg_rows_i": _sigs("void({t}[:, :, ::1], int64[:, ::1], boolean, boolean)", _INTS),
    "_arg_cols_kernel": _sigs("void({t}[:, :, ::1], int64[:, ::1], boolean, boolean)", _FLOATS + _INTS),
    "_cumulative_kernel": _sigs("void({t}[:, :, ::1], {t}[:, :, ::1], boolean, boolean, boolean)", _FLOATS + _INTS),
}
