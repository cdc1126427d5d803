"""CUDA index / sort kernels mirroring targets/cpu/kernels/indexing.py: same launcher
names, argument order and views (its docstring states the calling conventions), same
numerics. ArgMax/ArgMin and CumSum/CumProd live in reduce.py.

Every kernel is one thread per output (or per index) element in a grid-stride loop, so any
grid size is correct. Shape arrays (`data_shape`, `idx_shape`, `idx_dims`) are int64 device
arrays read inside the kernels: the launchers never read device memory on the host.

Out-of-range indices: the CPU raises IndexError, a kernel cannot. Gathers clamp such an
index to the nearest valid one (never reading outside the tensor); scatters skip the update.
Reject bad indices before launching if that matters.

Scatter design (deterministic, exactly the CPU's order, every dtype and reduction, with no
atomics): two ScatterElements updates can only meet when they lie on the same line of
`indices` along `axis` (every other coordinate is shared with the output), so one thread
per line applies that line's updates in order. ScatterND's updates are slices that any two
index tuples may share: with reduction 'none' (duplicates undefined by ONNX) one thread per
(update, column) writes in parallel, so duplicates leave one of their updates, not
necessarily the last; with add/mul/max/min one thread per column applies the updates in
the CPU's order (atomics would reorder float sums, have no mul, and treat NaN in max/min
differently from np.maximum), which serialises over the updates when the slices are narrow.
"""
import numpy as np
from numba import config, cuda, int64

_SIM = bool(config.ENABLE_CUDASIM)
BLOCK = 8 if _SIM else 256      # threads per block
GRID = 2 if _SIM else 4096      # most blocks per launch; kernels loop over the rest


def _launch(kernel, count, *args):
    """One thread per item, grid-stride."""
    if count > 0:
        kernel[min((count + BLOCK - 1) // BLOCK, GRID), BLOCK](*args)


# --------------------------------------------------------------------------- device helpers


@cuda.jit(device=True)
def _clamp(i, n):
    """Gather index: wrap a negative index once, then clamp into [0, n) (the CPU raises)."""
    j = int64(i)
    if j < 0:
        j += n
    if j < 0:
        return int64(0)
    if j >= n:
        return n - 1
    return j


@cuda.jit(device=True)
def _wrap(i, n):
    """Scatter index: wrap a negative index once; -1 when still out of range (skip)."""
    j = int64(i)
    if j < 0:
        j += n
    if j < 0 or j >= n:
        return int64(-1)
    return j


@cuda.jit(device=True)
def _combine(out, pos, u, reduction):
    """out[pos] <- u under the ONNX scatter reduction code (the CPU's _combine)."""
    if reduction == 0:
        out[pos] = u
    elif reduction == 1:
        out[pos] = out[pos] + u
    elif reduction == 2:
        out[pos] = out[pos] * u
    elif reduction == 3:
        if u != u or u > out[pos]:
            out[pos] = u
    else:
        if u != u or u < out[pos]:
            out[pos] = u


@cuda.jit
def _copy_kernel(src, dst):
    for i in range(cuda.grid(1), src.shape[0], cuda.gridsize(1)):
        dst[i] = src[i]


def _copy(src, dst):
    """dst <- src for same-shaped C-contiguous arrays (flattened views)."""
    _launch(_copy_kernel, src.size, src.reshape(src.size), dst.reshape(dst.size))


# --------------------------------------------------------------------------- gathers


@cuda.jit
def _gather_kernel(data3, idx, out3):
    outer, n, inner = data3.shape
    k = idx.shape[0]
    for e in range(cuda.grid(1), outer * k * inner, cuda.gridsize(1)):
        t = e % inner
        j = (e // inner) % k
        o = e // (inner * k)
        out3[o, j, t] = data3[o, _clamp(idx[j], n), t]


def gather(data3, idx, out3):
    """Gather: out3[o, j, :] = data3[o, idx[j], :] with negative idx wrapped."""
    _launch(_gather_kernel, out3.size, data3, idx, out3)


@cuda.jit(device=True)
def _element_offsets(e, data_shape, idx_shape, axis):
    """Offset in data of index element e with its axis coordinate dropped, data's stride
    along axis, e's coordinate along axis and idx's stride along axis."""
    rem = e
    off = int64(0)
    s = int64(1)
    si = int64(1)
    sa = int64(0)
    ca = int64(0)
    ia = int64(0)
    for d in range(data_shape.shape[0] - 1, -1, -1):
        m = idx_shape[d]
        c = rem % m
        rem //= m
        if d == axis:
            sa = s
            ca = c
            ia = si
        else:
            off += c * s
        s *= data_shape[d]
        si *= m
    return off, sa, ca, ia


@cuda.jit
def _gather_elements_kernel(data, data_shape, idx, idx_shape, out, axis):
    n = data_shape[axis]
    for e in range(cuda.grid(1), idx.shape[0], cuda.gridsize(1)):
        off, sa, ca, ia = _element_offsets(e, data_shape, idx_shape, axis)
        out[e] = data[off + _clamp(idx[e], n) * sa]


def gather_elements(data, data_shape, idx, idx_shape, out, axis):
    """GatherElements on flat arrays + int64 shape arrays (indices may be smaller in every dim)."""
    if axis < 0:
        axis += data_shape.shape[0]
    _launch(_gather_elements_kernel, idx.size, data, data_shape, idx, idx_shape, out, axis)


@cuda.jit
def _gather_nd_kernel(data3, idx_dims, idx3, out3):
    nb, _, s = data3.shape
    nj = idx3.shape[1]
    k = idx3.shape[2]
    for e in range(cuda.grid(1), nb * nj * s, cuda.gridsize(1)):
        t = e % s
        j = (e // s) % nj
        b = e // (s * nj)
        p = int64(0)
        st = int64(1)
        for q in range(k - 1, -1, -1):
            p += _clamp(idx3[b, j, q], idx_dims[q]) * st
            st *= idx_dims[q]
        out3[b, j, t] = data3[b, p, t]


def gather_nd(data3, idx_dims, idx3, out3):
    """GatherND: out3[b, j, :] = data3[b, flat(idx3[b, j, :]), :] (batch dims folded into b)."""
    _launch(_gather_nd_kernel, out3.size, data3, idx_dims, idx3, out3)


# --------------------------------------------------------------------------- scatters


@cuda.jit
def _scatter_elements_kernel(data_shape, idx, idx_shape, upd, out, axis, reduction):
    """One thread per line of indices along axis: the thread of the line's first element
    applies the whole line in order (other threads of the line have nothing to do)."""
    n = data_shape[axis]
    na = idx_shape[axis]
    for e in range(cuda.grid(1), idx.shape[0], cuda.gridsize(1)):
        off, sa, ca, ia = _element_offsets(e, data_shape, idx_shape, axis)
        if ca == 0:
            for m in range(na):
                f = e + m * ia
                i = _wrap(idx[f], n)
                if i >= 0:
                    _combine(out, off + i * sa, upd[f], reduction)


def scatter_elements(data, data_shape, idx, idx_shape, upd, out, axis, reduction):
    """ScatterElements on flat arrays + shapes; copies data into out, then applies updates."""
    _copy(data, out)
    if axis < 0:
        axis += data_shape.shape[0]
    _launch(_scatter_elements_kernel, idx.size, data_shape, idx, idx_shape, upd, out, axis, reduction)


@cuda.jit(device=True)
def _nd_row(idx2, j, idx_dims):
    """Flat row of data2 addressed by index tuple idx2[j], or -1 if out of range."""
    p = int64(0)
    st = int64(1)
    for q in range(idx2.shape[1] - 1, -1, -1):
        i = _wrap(idx2[j, q], idx_dims[q])
        if i < 0:
            return int64(-1)
        p += i * st
        st *= idx_dims[q]
    return p


@cuda.jit
def _scatter_nd_set_kernel(idx_dims, idx2, upd2, out2):
    """reduction 'none': one thread per (update, column)."""
    nj = idx2.shape[0]
    s = out2.shape[1]
    for e in range(cuda.grid(1), nj * s, cuda.gridsize(1)):
        t = e % s
        j = e // s
        p = _nd_row(idx2, j, idx_dims)
        if p >= 0:
            out2[p, t] = upd2[j, t]


@cuda.jit
def _scatter_nd_reduce_kernel(idx_dims, idx2, upd2, out2, reduction):
    """add/mul/max/min: one thread per column, updates in the CPU's order."""
    nj = idx2.shape[0]
    for t in range(cuda.grid(1), out2.shape[1], cuda.gridsize(1)):
        for j in range(nj):
            p = _nd_row(idx2, j, idx_dims)
            if p >= 0:
                _combine(out2[p], t, upd2[j, t], reduction)


def scatter_nd(data2, idx_dims, idx2, upd2, out2, reduction):
    """ScatterND: copy data2 into out2, then combine upd2[j, :] into out2[flat(idx2[j]), :]."""
    _copy(data2, out2)
    if reduction == 0:
        _launch(_scatter_nd_set_kernel, upd2.size, idx_dims, idx2, upd2, out2)
    elif idx2.shape[0]:
        _launch(_scatter_nd_reduce_kernel, out2.shape[1], idx_dims, idx2, upd2, out2, reduction)


# --------------------------------------------------------------------------- TopK


@cuda.jit(device=True)
def _better(a, ia, b, ib, largest):
    """TopK order: True if (a, ia) ranks before (b, ib); NaN is largest, ties -> lower index."""
    an = a != a
    bn = b != b
    if an or bn:
        if an and bn:
            return ia < ib
        return an if largest else bn
    if a == b:
        return ia < ib
    if largest:
        return a > b
    return a < b


@cuda.jit
def _topk_kernel(x2, k, largest, values_out, indices_out):
    """One thread per element: its rank is the number of row elements ranking before it
    (a strict total order, so ranks are distinct); ranks < k land at their position. The
    count stops at k, so the work per row is about n * k * log(n / k) comparisons."""
    rows, n = x2.shape
    for e in range(cuda.grid(1), rows * n, cuda.gridsize(1)):
        r = e // n
        j = e % n
        v = x2[r, j]
        rank = 0
        for q in range(n):
            if _better(x2[r, q], q, v, j, largest):
                rank += 1
                if rank >= k:
                    break
        if rank < k:
            values_out[r, rank] = v
            indices_out[r, rank] = j


def topk(x2, k, largest, sorted, values_out, indices_out):  # noqa: A002
    """TopK along the last axis of (rows, n), best first (also for sorted=0, like the CPU).
    The CPU raises for k outside [0, n]: the lowering knows k statically and must check it."""
    if k > 0:
        _launch(_topk_kernel, x2.size, x2, k, bool(largest), values_out, indices_out)


# --------------------------------------------------------------------------- elementwise layouts


@cuda.jit
def _trilu_kernel(x3, out3, k, upper):
    nb, rows, cols = x3.shape
    for e in range(cuda.grid(1), nb * rows * cols, cuda.gridsize(1)):
        j = e % cols
        i = (e // cols) % rows
        b = e // (cols * rows)
        d = j - i
        keep = d >= k if upper else d <= k
        if keep:
            out3[b, i, j] = x3[b, i, j]
        else:
            out3[b, i, j] = 0


def trilu(x3, out3, k, upper):
    """Trilu on (batch, rows, cols): keep col - row >= k (upper) or <= k (lower), else zero."""
    _launch(_trilu_kernel, x3.size, x3, out3, k, bool(upper))


@cuda.jit
def _one_hot_kernel(idx_flat, depth, off, on, out3):
    outer, dep, inner = out3.shape
    for e in range(cuda.grid(1), outer * dep * inner, cuda.gridsize(1)):
        t = e % inner
        d = (e // inner) % dep
        o = e // (inner * dep)
        v = idx_flat[o * inner + t]
        hit = False
        if not (v >= dep or v < -dep):     # before the cast: huge uint64 must not wrap
            i = int64(v)
            if i < 0:
                i += depth
            hit = i == d
        out3[o, d, t] = on if hit else off


def one_hot(idx_flat, depth, off, on, out3):
    """OneHot into (outer, depth, inner); indices in [-depth, -1] wrap, out of range -> all off.
    off/on are host scalars, cast to out3's dtype."""
    t = np.dtype(out3.dtype).type
    _launch(_one_hot_kernel, out3.size, idx_flat, depth, t(off), t(on), out3)


@cuda.jit
def _reverse_sequence_kernel(x3, seq_lens, out3, batch_axis):
    d0, d1, inner = x3.shape
    for e in range(cuda.grid(1), d0 * d1 * inner, cuda.gridsize(1)):
        q = e % inner
        a1 = (e // inner) % d1
        a0 = e // (inner * d1)
        if batch_axis == 0:
            b, t, nt = a0, a1, d1
        else:
            b, t, nt = a1, a0, d0
        L = int64(seq_lens[b])
        if L < 0:
            L = 0
        if L > nt:
            L = nt
        s = L - 1 - t if t < L else t
        if batch_axis == 0:
            out3[a0, a1, q] = x3[a0, s, q]
        else:
            out3[a0, a1, q] = x3[s, a1, q]


def reverse_sequence(x3, seq_lens, out3, batch_axis, time_axis):
    """ReverseSequence on (d0, d1, inner) with batch/time axes {0, 1}; lengths clamped to [0, T]."""
    if not ((batch_axis == 0 and time_axis == 1) or (batch_axis == 1 and time_axis == 0)):
        raise ValueError("reverse_sequence: batch_axis/time_axis must be 0 and 1")
    _launch(_reverse_sequence_kernel, x3.size, x3, seq_lens, out3, int(batch_axis))


# --------------------------------------------------------------------------- AOT signatures


def _sigs(pattern, dtypes, idx_types=("int64",)):
    return [pattern.format(t=t, i=i) for t in dtypes for i in idx_types]


_VALS = ("float32", "float64", "int32", "int64")
_IDX = ("int32", "int64")
SIGNATURES = {
    "_copy_kernel": _sigs("void({t}[::1], {t}[::1])", _VALS + ("bool", "uint8")),
    "_gather_kernel": _sigs("void({t}[:, :, ::1], {i}[::1], {t}[:, :, ::1])", _VALS, _IDX),
    "_gather_elements_kernel": _sigs("void({t}[::1], int64[::1], {i}[::1], int64[::1], {t}[::1], int64)",
                                     _VALS, _IDX),
    "_gather_nd_kernel": _sigs("void({t}[:, :, ::1], int64[::1], int64[:, :, ::1], {t}[:, :, ::1])", _VALS),
    "_scatter_elements_kernel": _sigs("void(int64[::1], {i}[::1], int64[::1], {t}[::1], {t}[::1], int64, int64)",
                                      _VALS, _IDX),
    "_scatter_nd_set_kernel": _sigs("void(int64[::1], int64[:, ::1], {t}[:, ::1], {t}[:, ::1])", _VALS),
    "_scatter_nd_reduce_kernel": _sigs("void(int64[::1], int64[:, ::1], {t}[:, ::1], {t}[:, ::1], int64)", _VALS),
    "_topk_kernel": _sigs("void({t}[:, ::1], int64, boolean, {t}[:, ::1], int64[:, ::1])", _VALS),
    "_trilu_kernel": _sigs("void({t}[:, :, ::1], {t}[:, :, ::1], int64, boolean)", _VALS),
    "_one_hot_kernel": [f"void({i}[::1], int64, {t}, {t}, {t}[:, :, ::1])"
                        for t in ("float32", "float64", "int64") for i in ("int32", "int64", "float32")],
    "_reverse_sequence_kernel": _sigs("void({t}[:, :, ::1], {i}[::1], {t}[:, :, ::1], int64)", _VALS, _IDX),
}
