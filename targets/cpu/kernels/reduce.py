"""Row-wise reductions: the caller moves the reduced axes last and views the
tensor as (rows, n). Accumulation is in float64 (or int64) for accuracy."""
import numpy as np
from numba import prange

from .fastmath import exp32_shifted, sq_dev64, sum64
from .jit import njit

_JIT = dict(cache=True, error_model="numpy")


def _sum_like(transform, finish):
    """A row reduction accumulating transform(v) in float64, then finish(acc, n).
    One small function per Reduce op: Numba compiles only the ones a model uses."""
    @njit(**_JIT)
    def kernel(x, out):
        rows, n = x.shape
        for r in range(rows):
            acc = 0.0
            for j in range(n):
                acc += transform(np.float64(x[r, j]))
            out[r] = finish(acc, n)
    return kernel


@njit(inline="always")
def _ident(v):
    return v


@njit(inline="always")
def _abs(v):
    return abs(v)


@njit(inline="always")
def _square(v):
    return v * v


@njit(inline="always")
def _keep(acc, n):
    return acc


@njit(inline="always")
def _mean(acc, n):
    return acc / n


@njit(inline="always")
def _sqrt(acc, n):
    return np.sqrt(acc)


@njit(inline="always")
def _log(acc, n):
    return np.log(acc)


sum_rows = _sum_like(_ident, _keep)
mean_rows = _sum_like(_ident, _mean)
l1_rows = _sum_like(_abs, _keep)
l2_rows = _sum_like(_square, _sqrt)
logsum_rows = _sum_like(_ident, _log)
sumsquare_rows = _sum_like(_square, _keep)


@njit(**_JIT)
def int_sum_rows(x, out):
    """Integer ReduceSum, exact in int64 (wrapping like numpy)."""
    rows, n = x.shape
    for r in range(rows):
        acc = np.int64(0)
        for j in range(n):
            acc += x[r, j]
        out[r] = acc


@njit(**_JIT)
def prod_rows(x, out):
    rows, n = x.shape
    for r in range(rows):
        acc = x[r, 0] * 0 + 1 if n else 1
        for j in range(n):
            acc = acc * x[r, j]
        out[r] = acc


@njit(**_JIT)
def max_rows(x, out):
    """Row max; NaN propagates; an empty row gives -inf (the reduction's identity)."""
    rows, n = x.shape
    for r in range(rows):
        if n == 0:
            out[r] = -np.inf
            continue
        acc = x[r, 0]
        for j in range(1, n):
            v = x[r, j]
            if v > acc or v != v:
                acc = v
        out[r] = acc


@njit(**_JIT)
def min_rows(x, out):
    """Row min; NaN propagates; an empty row gives +inf."""
    rows, n = x.shape
    for r in range(rows):
        if n == 0:
            out[r] = np.inf
            continue
        acc = x[r, 0]
        for j in range(1, n):
            v = x[r, j]
            if v < acc or v != v:
                acc = v
        out[r] = acc


@njit(**_JIT)
def logsumexp_rows(x, out):
    rows, n = x.shape
    for r in range(rows):
        m = -np.inf
        for j in range(n):
            if x[r, j] > m:
                m = x[r, j]
        if m == -np.inf or m == np.inf:
            m = 0.0
        s = 0.0
        for j in range(n):
            s += np.exp(np.float64(x[r, j]) - m)
        out[r] = np.log(s) + m


@njit(**_JIT)
def lp_normalize_rows(x, out, p):
    """x / ||x||_p per row (p 1 or 2), the norm in float64; a zero norm gives 0."""
    rows, n = x.shape
    for r in range(rows):
        s = 0.0
        for j in range(n):
            v = np.float64(x[r, j])
            s += abs(v) if p == 1 else v * v
        norm = s if p == 1 else np.sqrt(s)
        for j in range(n):
            out[r, j] = 0.0 if norm == 0.0 else x[r, j] / norm


SOFTMAX, LOGSOFTMAX, HARDMAX = range(3)


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _all_finite(row):
    """No NaN or inf in the row (v * 0 is 0 only for finite v); the loop vectorises."""
    s = np.float32(0.0)
    for j in range(row.shape[0]):
        s += row[j] * np.float32(0.0)
    return s == 0


@njit(cache=True, error_model="numpy", fastmath={"nnan", "ninf"})
def _max_finite(row):
    """max(row) for a row _all_finite accepted: with NaN and inf ruled out it vectorises."""
    m = row[0]
    for j in range(1, row.shape[0]):
        m = max(m, row[j])
    return m


@njit(cache=True, error_model="numpy")
def softmax_rows(x, out, kind):
    """Softmax / LogSoftmax / Hardmax over the last axis of a (rows, n) view."""
    rows, n = x.shape
    scratch = np.empty(n if x.itemsize == 4 else 0, np.int32)
    for r in range(rows):
        if kind == HARDMAX:
            best = 0
            for j in range(n):
                out[r, j] = 0
                if x[r, j] > x[r, best]:
                    best = j
            if n:
                out[r, best] = 1
            continue
        if n == 0:
            continue
        if kind == SOFTMAX and x.itemsize == 4 and _all_finite(x[r]):   # exp32_shifted's domain
            xr, orow = x[r], out[r]
            exp32_shifted(xr, _max_finite(xr), orow, scratch)
            inv = np.float32(1.0 / sum64(orow))
            for j in range(n):
                orow[j] *= inv
            continue
        m = x[r, 0]               # x's type: a float32 row's exp is expf, once per element
        for j in range(1, n):
            if x[r, j] > m:
                m = x[r, j]
        s = 0.0
        if kind == SOFTMAX:
            for j in range(n):
                e = np.exp(x[r, j] - m)
                out[r, j] = e
                s += e
            inv = 1.0 / s
            for j in range(n):
                out[r, j] = out[r, j] * inv
            continue
        for j in range(n):
            s += np.exp(np.float64(x[r, j]) - m)
        ls = np.log(s)
        for j in range(n):
            out[r, j] = np.float64(x[r, j]) - m - ls


@njit(cache=True, error_model="numpy")
def layernorm_rows(x, scale, bias, out, mean_out, inv_out, eps):
    """LayerNormalization over the last axis of a (rows, n) view; scale/bias of length n. The
    mean and variance in float64, summed reassociated (fastmath.sum64, sq_dev64) so they
    vectorise: in order, each sum was a chain of dependent adds (gpt2_small's 64x256 rows:
    33 us a LayerNormalization)."""
    rows, n = x.shape
    for r in range(rows):
        mean = sum64(x[r]) / n
        v = sq_dev64(x[r], mean)
        inv = 1.0 / np.sqrt(v / n + eps)
        mean_out[r] = mean
        inv_out[r] = inv
        for j in range(n):
            out[r, j] = (x[r, j] - mean) * inv * scale[j] + bias[j]


@njit(cache=True, error_model="numpy", parallel=True)
def softmax_rows_par(x, out, kind, parts):
    """softmax_rows on `parts` bands of rows, one per thread: the same arithmetic per row."""
    rows = x.shape[0]
    for p in prange(parts):
        lo, hi = p * rows // parts, (p + 1) * rows // parts
        softmax_rows(x[lo:hi], out[lo:hi], kind)


@njit(cache=True, error_model="numpy", parallel=True)
def layernorm_rows_par(x, scale, bias, out, mean_out, inv_out, eps, parts):
    """layernorm_rows on `parts` bands of rows, one per thread: the same arithmetic per row."""
    rows = x.shape[0]
    for p in prange(parts):
        lo, hi = p * rows // parts, (p + 1) * rows // parts
        layernorm_rows(x[lo:hi], scale, bias, out[lo:hi], mean_out[lo:hi], inv_out[lo:hi], eps)
