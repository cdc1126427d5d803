"""Hand-written Numba CPU kernels for ONNX index / sort ops.

Every kernel runs on fixed-rank C-contiguous views that the caller builds with free
reshapes, so one compiled implementation per dtype serves every tensor rank.  Kernels
write into caller-allocated ``out`` arrays and return nothing, except ``unique`` and
``nonmax_suppression`` whose output sizes depend on the data.  Negative indices are
normalised inside the kernels; an index still out of range raises IndexError.

Calling conventions (``prod(())`` is 1; ``a`` is the op's axis, already made
non-negative by the caller unless stated otherwise):

gather(data3, idx, out3)
    data3 = data.reshape(prod(data.shape[:a]), data.shape[a], -1)
    idx   = indices.reshape(-1)                      (int32 or int64)
    out3  = out.reshape(data3.shape[0], idx.size, data3.shape[2])
    out.shape = data.shape[:a] + indices.shape + data.shape[a+1:]

gather_elements(data, data_shape, idx, idx_shape, out, axis)
    Flat arrays plus explicit shapes, because indices may be smaller than data in
    every dimension (so no common 3-D view exists).
    data = data.reshape(-1); data_shape = np.array(data.shape, np.int64)
    idx  = indices.reshape(-1); idx_shape = np.array(indices.shape, np.int64)
    out  = 1-D, size idx.size (caller reshapes it to indices.shape)
    axis may be negative (normalised against len(data_shape)).

scatter_elements(data, data_shape, idx, idx_shape, upd, out, axis, reduction)
    Same flat convention; upd = updates.reshape(-1) (same shape as indices);
    out = 1-D of size data.size.  The KERNEL copies data into out first (out may be
    the same array as data for an in-place update).  Updates are applied in C order
    of indices, so with reduction 'none' the last duplicate wins.
    reduction: 0 none, 1 add, 2 mul, 3 max, 4 min (max/min propagate NaN like
    np.maximum / np.minimum).  Scatter (opset 9-10) is the same kernel, reduction 0.

gather_nd(data3, idx_dims, idx3, out3)
    b = batch_dims, k = indices.shape[-1]
    data3    = data.reshape(prod(data.shape[:b]), prod(data.shape[b:b+k]), -1)
    idx_dims = np.array(data.shape[b:b+k], np.int64)
    idx3     = indices.reshape(prod(indices.shape[:b]), -1, k)
    out3     = out.reshape(idx3.shape[0], idx3.shape[1], data3.shape[2])
    out.shape = indices.shape[:-1] + data.shape[b+k:]

scatter_nd(data2, idx_dims, idx2, upd2, out2, reduction)
    k = indices.shape[-1]
    data2 = data.reshape(prod(data.shape[:k]), -1); idx_dims = np.array(data.shape[:k])
    idx2  = indices.reshape(-1, k); upd2 = updates.reshape(idx2.shape[0], data2.shape[1])
    out2  = out.reshape(data2.shape).  The KERNEL copies data2 into out2 first.
    reduction as for scatter_elements.

topk(x2, k, largest, sorted, values_out, indices_out)
    x2 = moveaxis(x, a, -1).reshape(-1, n) (C-contiguous copy); values_out (rows, k)
    of x's dtype, indices_out (rows, k) int64; the caller moves the axis back.  Output
    is always sorted best-first, ties broken by lower index, NaN counted as the
    largest value (this is onnx.reference's order for sorted=0 too).  Uses a size-k
    heap (O(n log k)) or, when k >= n / TOPK_SORT_RATIO, a full merge sort per row.

arg_reduce(x3, out2, is_max, select_last_index)
    x3 = x.reshape(prod(x.shape[:a]), x.shape[a], -1); out2 int64 (outer, inner),
    reshaped by the caller to the keepdims / no-keepdims shape.  NaN wins like
    np.argmax / np.argmin (first NaN, or last NaN when select_last_index).

cumulative(x3, out3, exclusive, reverse, is_prod)
    x3 = x.reshape(prod(x.shape[:a]), x.shape[a], -1); out3 same shape and dtype.
    Accumulates in the tensor dtype (integers wrap like numpy).

trilu(x3, out3, k, upper)
    x3 = x.reshape(-1, x.shape[-2], x.shape[-1]); out3 same shape.

one_hot(idx_flat, depth, off, on, out3)
    a = axis normalised against indices.ndim + 1;
    idx_flat = indices.reshape(-1) (any numeric dtype; values in [-depth, depth) are
    cast to int64 by truncation, all others give an all-off column);
    out3 = out.reshape(prod(indices.shape[:a]), depth, prod(indices.shape[a:])).
    Indices in [-depth, -1] wrap; others out of [0, depth) give an all-off column.

reverse_sequence(x3, seq_lens, out3, batch_axis, time_axis)
    x3 = x.reshape(x.shape[0], x.shape[1], -1); (batch_axis, time_axis) is (0, 1) or
    (1, 0); seq_lens int32/int64 of length batch; out3 same shape as x3.  Lengths are
    clamped to [0, time].

nonmax_suppression(boxes, scores, max_out, iou_thr, score_thr, use_score_thr,
                   center_point_box) -> int64 array (num_selected, 3)
    boxes (batch, num_boxes, 4), scores (batch, classes, num_boxes), both float32 or
    float64 (the IoU is computed in that dtype, as onnx.reference does); max_out int
    (absent input -> 0); use_score_thr False when score_threshold is absent.

unique(x3, is_sorted) -> (y3, indices, inverse, counts)
    Without axis: x3 = x.reshape(1, -1, 1); with axis a: x3 = x.reshape(
    prod(x.shape[:a]), x.shape[a], -1).  y3 is (outer, n_unique, inner) (caller
    reshapes to x.shape[:a] + (n_unique,) + x.shape[a+1:], or 1-D without axis);
    indices/inverse/counts int64.  Slices compare lexicographically in C order,
    NaN sorts last and all NaNs are equal (numpy 2 np.unique semantics).

tensor_scatter(cache4, upd4, write_idx, out4, circular)
    a = the sequence axis (>= 1); cache4 = cache.reshape(cache.shape[0],
    prod(cache.shape[1:a]), cache.shape[a], -1); upd4 likewise from update (its
    axis a may be shorter); write_idx int64 (batch,), zeros when absent; out4 as
    cache4.  Row j of batch b lands at write_idx[b] + j (modulo the axis when
    circular).  The KERNEL copies cache4 into out4 first.

bfloat16 / float16 tensors: numba has no bfloat16, so the caller casts to float32
and back (exact for every op here except arithmetic in cumulative/scatter reductions).
"""
from __future__ import annotations

import numpy as np

from .jit import njit

_JIT = dict(cache=True, error_model="numpy")
TOPK_SORT_RATIO = 4  # topk switches from a size-k heap to a full merge sort when k >= n / 4


# --------------------------------------------------------------------------- helpers


@njit(inline="always", **_JIT)
def _norm(i, n):
    """Normalise one possibly-negative index against dim size n; raise if out of range."""
    j = np.int64(i)
    if j < 0:
        j += n
    if j < 0 or j >= n:
        raise IndexError("index out of range")
    return j


@njit(inline="always", **_JIT)
def _combine(out, pos, u, reduction):
    """Store update u into out[pos] with the ONNX scatter reduction code."""
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


@njit(**_JIT)
def _strides(shape):
    """C-order element strides of a shape array."""
    r = shape.shape[0]
    st = np.empty(r, np.int64)
    s = np.int64(1)
    for d in range(r - 1, -1, -1):
        st[d] = s
        s *= shape[d]
    return st


# --------------------------------------------------------------------------- gather


@njit(**_JIT)
def gather(data3, idx, out3):
    """Gather: out3[o, j, :] = data3[o, idx[j], :] with negative idx wrapped."""
    outer, n, inner = data3.shape
    k = idx.shape[0]
    ii = np.empty(k, np.int64)
    for j in range(k):
        ii[j] = _norm(idx[j], n)
    for o in range(outer):
        for j in range(k):
            i = ii[j]
            for t in range(inner):
                out3[o, j, t] = data3[o, i, t]


@njit(**_JIT)
def gather_elements(data, data_shape, idx, idx_shape, out, axis):
    """GatherElements on flat arrays + shapes (indices may be smaller in every dim)."""
    r = data_shape.shape[0]
    if axis < 0:
        axis += r
    dst = _strides(data_shape)
    n = data_shape[axis]
    sa = dst[axis]
    coord = np.zeros(r, np.int64)
    base = np.int64(0)
    for e in range(idx.shape[0]):
        out[e] = data[base + _norm(idx[e], n) * sa]
        d = r - 1
        while d >= 0:
            coord[d] += 1
            if d != axis:
                base += dst[d]
            if coord[d] < idx_shape[d]:
                break
            if d != axis:
                base -= coord[d] * dst[d]
            coord[d] = 0
            d -= 1


@njit(**_JIT)
def scatter_elements(data, data_shape, idx, idx_shape, upd, out, axis, reduction):
    """ScatterElements on flat arrays + shapes; copies data into out, then applies updates."""
    for e in range(data.shape[0]):
        out[e] = data[e]
    r = data_shape.shape[0]
    if axis < 0:
        axis += r
    dst = _strides(data_shape)
    n = data_shape[axis]
    sa = dst[axis]
    coord = np.zeros(r, np.int64)
    base = np.int64(0)
    for e in range(idx.shape[0]):
        _combine(out, base + _norm(idx[e], n) * sa, upd[e], reduction)
        d = r - 1
        while d >= 0:
            coord[d] += 1
            if d != axis:
                base += dst[d]
            if coord[d] < idx_shape[d]:
                break
            if d != axis:
                base -= coord[d] * dst[d]
            coord[d] = 0
            d -= 1


@njit(**_JIT)
def gather_nd(data3, idx_dims, idx3, out3):
    """GatherND: out3[b, j, :] = data3[b, flat(idx3[b, j, :]), :] (batch dims folded into b)."""
    nb, _, s = data3.shape
    nj = idx3.shape[1]
    k = idx3.shape[2]
    pst = _strides(idx_dims)
    for b in range(nb):
        for j in range(nj):
            p = np.int64(0)
            for q in range(k):
                p += _norm(idx3[b, j, q], idx_dims[q]) * pst[q]
            for t in range(s):
                out3[b, j, t] = data3[b, p, t]


@njit(**_JIT)
def scatter_nd(data2, idx_dims, idx2, upd2, out2, reduction):
    """ScatterND: copy data2 into out2, then combine upd2[j, :] into out2[flat(idx2[j]), :]."""
    P, s = data2.shape
    for p in range(P):
        for t in range(s):
            out2[p, t] = data2[p, t]
    nj, k = idx2.shape
    pst = _strides(idx_dims)
    for j in range(nj):
        p = np.int64(0)
        for q in range(k):
            p += _norm(idx2[j, q], idx_dims[q]) * pst[q]
        row = out2[p]
        for t in range(s):
            _combine(row, t, upd2[j, t], reduction)


# --------------------------------------------------------------------------- sorting


@njit(inline="always", **_JIT)
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


@njit(**_JIT)
def _sift_down(hv, hi, pos, size, largest):
    """Restore the heap whose root is the WORST kept element (parent worse than children)."""
    while True:
        c = 2 * pos + 1
        if c >= size:
            return
        w = c
        if c + 1 < size and _better(hv[w], hi[w], hv[c + 1], hi[c + 1], largest):
            w = c + 1
        if _better(hv[w], hi[w], hv[pos], hi[pos], largest):
            return
        tv = hv[pos]
        hv[pos] = hv[w]
        hv[w] = tv
        ti = hi[pos]
        hi[pos] = hi[w]
        hi[w] = ti
        pos = w


@njit(**_JIT)
def _argsort_better(vals, n, largest, a, b):
    """Sort positions 0..n-1 of vals by _better (runs + merges); returns the sorted buffer."""
    for j in range(n):
        a[j] = j
    width = 16  # insertion-sort runs of 16, then bottom-up merges
    for lo in range(0, n, width):
        hi = min(lo + width, n)
        for j in range(lo + 1, hi):
            aj = a[j]
            i = j - 1
            while i >= lo and _better(vals[aj], aj, vals[a[i]], a[i], largest):
                a[i + 1] = a[i]
                i -= 1
            a[i + 1] = aj
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            q = lo
            while i < mid and j < hi:
                ai = a[i]
                aj = a[j]
                if _better(vals[aj], aj, vals[ai], ai, largest):
                    b[q] = aj
                    j += 1
                else:
                    b[q] = ai
                    i += 1
                q += 1
            while i < mid:
                b[q] = a[i]
                i += 1
                q += 1
            while j < hi:
                b[q] = a[j]
                j += 1
                q += 1
            lo = hi
        a, b = b, a
        width *= 2
    return a


@njit(**_JIT)
def _topk_full_sort(x2, k, largest, values_out, indices_out):
    """TopK for large k: sort each row's positions with _argsort_better and keep the first k."""
    rows, n = x2.shape
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    for r in range(rows):
        row = x2[r]
        srt = _argsort_better(row, n, largest, a, b)
        for j in range(k):
            values_out[r, j] = row[srt[j]]
            indices_out[r, j] = srt[j]


@njit(**_JIT)
def topk(x2, k, largest, sorted, values_out, indices_out):  # noqa: A002
    """TopK along the last axis of (rows, n): size-k heap, or a full merge sort when k is large."""
    rows, n = x2.shape
    if k < 0 or k > n:
        raise ValueError("topk: k out of range")
    if k == 0:
        return
    if TOPK_SORT_RATIO * k >= n:
        _topk_full_sort(x2, k, largest, values_out, indices_out)
        return
    hv = np.empty(k, x2.dtype)
    hi = np.empty(k, np.int64)
    for r in range(rows):
        for j in range(k):
            hv[j] = x2[r, j]
            hi[j] = j
        for p in range(k // 2 - 1, -1, -1):
            _sift_down(hv, hi, p, k, largest)
        for j in range(k, n):
            v = x2[r, j]
            if _better(v, j, hv[0], hi[0], largest):
                hv[0] = v
                hi[0] = j
                _sift_down(hv, hi, 0, k, largest)
        # pop worst-first into the tail -> best-first order (also used for sorted=0)
        for size in range(k, 0, -1):
            values_out[r, size - 1] = hv[0]
            indices_out[r, size - 1] = hi[0]
            hv[0] = hv[size - 1]
            hi[0] = hi[size - 1]
            _sift_down(hv, hi, 0, size - 1, largest)


@njit(**_JIT)
def arg_reduce(x3, out2, is_max, select_last_index):
    """ArgMax/ArgMin over the middle axis of (outer, n, inner) with np.argmax NaN semantics."""
    outer, n, inner = x3.shape
    if n == 0:
        raise ValueError("arg_reduce over an empty axis")
    best = np.empty(inner, x3.dtype)
    for o in range(outer):
        for t in range(inner):
            best[t] = x3[o, 0, t]
            out2[o, t] = 0
        for j in range(1, n):
            for t in range(inner):
                v = x3[o, j, t]
                b = best[t]
                take = False
                if select_last_index:
                    if v != v:
                        take = True
                    elif b != b:
                        take = False
                    elif is_max:
                        take = v >= b
                    else:
                        take = v <= b
                else:
                    if b != b:
                        take = False
                    elif v != v:
                        take = True
                    elif is_max:
                        take = v > b
                    else:
                        take = v < b
                if take:
                    best[t] = v
                    out2[o, t] = j


@njit(**_JIT)
def cumulative(x3, out3, exclusive, reverse, is_prod):
    """CumSum / CumProd along the middle axis of (outer, n, inner), in the tensor dtype."""
    outer, n, inner = x3.shape
    if n == 0:
        return
    first = n - 1 if reverse else 0
    step = -1 if reverse else 1
    for o in range(outer):
        for t in range(inner):
            if exclusive:
                out3[o, first, t] = 1 if is_prod else 0
            else:
                out3[o, first, t] = x3[o, first, t]
        prev = first
        for m in range(1, n):
            j = first + step * m
            src = prev if exclusive else j
            for t in range(inner):
                if is_prod:
                    out3[o, j, t] = out3[o, prev, t] * x3[o, src, t]
                else:
                    out3[o, j, t] = out3[o, prev, t] + x3[o, src, t]
            prev = j


@njit(**_JIT)
def trilu(x3, out3, k, upper):
    """Trilu on (batch, rows, cols): keep col - row >= k (upper) or <= k (lower), else zero."""
    nb, rows, cols = x3.shape
    for b in range(nb):
        for i in range(rows):
            for j in range(cols):
                d = j - i
                keep = d >= k if upper else d <= k
                if keep:
                    out3[b, i, j] = x3[b, i, j]
                else:
                    out3[b, i, j] = 0


@njit(**_JIT)
def one_hot(idx_flat, depth, off, on, out3):
    """OneHot into (outer, depth, inner); indices in [-depth, -1] wrap, out of range -> all off."""
    outer, dep, inner = out3.shape
    for o in range(outer):
        for d in range(dep):
            for t in range(inner):
                out3[o, d, t] = off
        for t in range(inner):
            v = idx_flat[o * inner + t]
            if v >= dep or v < -dep:  # before the cast: huge uint64 must not wrap
                continue
            i = np.int64(v)
            if i < 0:
                i += depth
            if i >= 0 and i < dep:
                out3[o, i, t] = on


@njit(**_JIT)
def reverse_sequence(x3, seq_lens, out3, batch_axis, time_axis):
    """ReverseSequence on (d0, d1, inner) with batch/time axes {0, 1}; lengths clamped to [0, T]."""
    if not ((batch_axis == 0 and time_axis == 1) or (batch_axis == 1 and time_axis == 0)):
        raise ValueError("reverse_sequence: batch_axis/time_axis must be 0 and 1")
    d0, d1, inner = x3.shape
    nb = d0 if batch_axis == 0 else d1
    nt = d1 if batch_axis == 0 else d0
    for b in range(nb):
        L = np.int64(seq_lens[b])
        if L < 0:
            L = 0
        if L > nt:
            L = nt
        for t in range(nt):
            s = L - 1 - t if t < L else t
            if batch_axis == 0:
                for q in range(inner):
                    out3[b, t, q] = x3[b, s, q]
            else:
                for q in range(inner):
                    out3[t, b, q] = x3[s, b, q]


# --------------------------------------------------------------------------- NMS


@njit(**_JIT)
def _box_iou_suppress(bx, i1, i2, center, half, thr):
    """onnx.reference suppress_by_iou: True if IoU(box i1, box i2) > thr, in the box dtype."""
    if center == 0:
        a0 = bx[i1, 1]
        a1 = bx[i1, 3]
        x1min = min(a0, a1)
        x1max = max(a0, a1)
        a0 = bx[i2, 1]
        a1 = bx[i2, 3]
        x2min = min(a0, a1)
        x2max = max(a0, a1)
        a0 = bx[i1, 0]
        a1 = bx[i1, 2]
        y1min = min(a0, a1)
        y1max = max(a0, a1)
        a0 = bx[i2, 0]
        a1 = bx[i2, 2]
        y2min = min(a0, a1)
        y2max = max(a0, a1)
    else:
        w = bx[i1, 2] * half
        h = bx[i1, 3] * half
        x1min = bx[i1, 0] - w
        x1max = bx[i1, 0] + w
        y1min = bx[i1, 1] - h
        y1max = bx[i1, 1] + h
        w = bx[i2, 2] * half
        h = bx[i2, 3] * half
        x2min = bx[i2, 0] - w
        x2max = bx[i2, 0] + w
        y2min = bx[i2, 1] - h
        y2max = bx[i2, 1] + h
    ixmin = max(x1min, x2min)
    ixmax = min(x1max, x2max)
    if ixmax <= ixmin:
        return False
    iymin = max(y1min, y2min)
    iymax = min(y1max, y2max)
    if iymax <= iymin:
        return False
    inter = (ixmax - ixmin) * (iymax - iymin)
    if inter <= 0:
        return False
    area1 = (x1max - x1min) * (y1max - y1min)
    area2 = (x2max - x2min) * (y2max - y2min)
    union = area1 + area2 - inter
    if area1 <= 0 or area2 <= 0 or union <= 0:
        return False
    return inter / union > thr


@njit(**_JIT)
def nonmax_suppression(boxes, scores, max_out, iou_thr, score_thr, use_score_thr,
                       center_point_box):
    """Greedy per-(batch, class) NMS as in onnx.reference; returns new int64 (num_selected, 3)."""
    nb, nbox, _ = boxes.shape
    nc = scores.shape[1]
    consts = np.empty(3, boxes.dtype)  # keep IoU arithmetic in the box dtype
    consts[0] = 0.5
    consts[1] = iou_thr
    half = consts[0]
    thr = consts[1]
    sthr = np.empty(1, scores.dtype)
    sthr[0] = score_thr
    if max_out < 0:
        max_out = 0
    cap = min(max_out, nbox)
    res = np.empty((nb * nc * cap, 3), np.int64)
    cnt = 0
    cand = np.empty(nbox, np.int64)
    cscore = np.empty(nbox, scores.dtype)
    buf_a = np.empty(nbox, np.int64)
    buf_b = np.empty(nbox, np.int64)
    sel = np.empty(max(cap, 1), np.int64)
    for b in range(nb):
        bx = boxes[b]
        for c in range(nc):
            nc_ = 0
            for i in range(nbox):
                s = scores[b, c, i]
                if (not use_score_thr) or s > sthr[0]:
                    cand[nc_] = i
                    cscore[nc_] = s
                    nc_ += 1
            # score descending, ties -> lower box index (cand is increasing)
            order = _argsort_better(cscore, nc_, True, buf_a, buf_b)
            nsel = 0
            for q in range(nc_):
                if nsel >= cap:
                    break
                i = cand[order[q]]
                keep = True
                for m in range(nsel):
                    if _box_iou_suppress(bx, i, sel[m], center_point_box, half, thr):
                        keep = False
                        break
                if keep:
                    sel[nsel] = i
                    nsel += 1
                    res[cnt, 0] = b
                    res[cnt, 1] = c
                    res[cnt, 2] = i
                    cnt += 1
    return res[:cnt].copy()


# --------------------------------------------------------------------------- Unique


@njit(**_JIT)
def _slice_cmp(x3, a, b):
    """Lexicographic compare of slices x3[:, a, :] and x3[:, b, :] (NaN last, NaN == NaN)."""
    outer, _, inner = x3.shape
    for o in range(outer):
        for t in range(inner):
            u = x3[o, a, t]
            v = x3[o, b, t]
            un = u != u
            vn = v != v
            if un or vn:
                if un and vn:
                    continue
                return 1 if un else -1
            if u < v:
                return -1
            if u > v:
                return 1
    return 0


@njit(**_JIT)
def _stable_argsort_slices(x3):
    """Bottom-up stable merge sort of the slice indices 0..n-1 by _slice_cmp."""
    n = x3.shape[1]
    a = np.arange(n).astype(np.int64)
    tmp = np.empty(n, np.int64)
    width = 1
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if _slice_cmp(x3, a[j], a[i]) < 0:
                    tmp[k] = a[j]
                    j += 1
                else:
                    tmp[k] = a[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = a[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = a[j]
                j += 1
                k += 1
            lo = hi
        a, tmp = tmp, a
        width *= 2
    return a


@njit(**_JIT)
def unique(x3, is_sorted):
    """Unique slices along axis 1 of (outer, n, inner); returns (y3, indices, inverse, counts)."""
    outer, n, inner = x3.shape
    order = _stable_argsort_slices(x3)
    first = np.empty(n, np.int64)
    counts = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    g = -1
    for q in range(n):
        i = order[q]
        if q == 0 or _slice_cmp(x3, order[q - 1], i) != 0:
            g += 1
            first[g] = i  # stable sort: first member is the first occurrence
            counts[g] = 0
        counts[g] += 1
        inverse[i] = g
    u = g + 1
    first = first[:u].copy()
    counts = counts[:u].copy()
    if not is_sorted:
        # order groups by first occurrence: first[] holds distinct positions in [0, n)
        group_at = np.full(n, -1, np.int64)
        for q in range(u):
            group_at[first[q]] = q
        perm = np.empty(u, np.int64)
        rank = np.empty(u, np.int64)
        q = 0
        for i in range(n):
            g = group_at[i]
            if g >= 0:
                perm[q] = g
                rank[g] = q
                q += 1
        first = first[perm]
        counts = counts[perm]
        for i in range(n):
            inverse[i] = rank[inverse[i]]
    y3 = np.empty((outer, u, inner), x3.dtype)
    for o in range(outer):
        for q in range(u):
            s = first[q]
            for t in range(inner):
                y3[o, q, t] = x3[o, s, t]
    return y3, first, inverse, counts


@njit(**_JIT)
def tensor_scatter(cache4, upd4, write_idx, out4, circular):
    out4[...] = cache4
    n = cache4.shape[2]
    for b in range(upd4.shape[0]):
        for p in range(upd4.shape[1]):
            for j in range(upd4.shape[2]):
                t = write_idx[b] + j
                if circular:
                    t %= n
                elif t < 0 or t >= n:
                    raise IndexError("TensorScatter: write index out of range")
                out4[b, p, t] = upd4[b, p, j]
