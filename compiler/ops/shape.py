"""Shape and data-movement ops. With concrete shapes these fold on the host
whenever their inputs are known (that is shape arithmetic, not tensor math)."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..registry import INJECTIVE, register
from .common import ShapeError, attr, attr_to_input, axis, broadcast, const_of, ints

I64 = np.dtype(np.int64)


def _one(dtype, shape):
    return [(np.dtype(dtype), tuple(int(d) for d in shape))]


# Shape / Size ---------------------------------------------------------------
def _shape_range(node):
    rank = len(node.inputs[0].shape)
    start, end = attr(node, "start", 0), attr(node, "end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, max(end, start)


register("Shape", INJECTIVE, lambda n: _one(I64, [_shape_range(n)[1] - _shape_range(n)[0]]),
         fold=lambda n, a: [np.array(n.inputs[0].shape[slice(*_shape_range(n))], np.int64)])
register("Size", INJECTIVE, lambda n: _one(I64, ()),
         fold=lambda n, a: [np.array(n.inputs[0].size, np.int64)])


# Reshape family ---------------------------------------------------------------
def reshape_target(in_shape, spec, allowzero=False):
    spec = list(ints(spec))
    out = []
    for i, d in enumerate(spec):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ShapeError("Reshape: 0 refers past the input's rank")
            d = in_shape[i]
        out.append(d)
    total = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1:
        raise ShapeError("Reshape: more than one -1")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise ShapeError(f"Reshape: cannot reshape {tuple(in_shape)} to {tuple(spec)}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise ShapeError(f"Reshape: cannot reshape {tuple(in_shape)} to {tuple(spec)}")
    return tuple(out)


def _reshape(node):
    return _one(node.inputs[0].dtype, reshape_target(node.inputs[0].shape, const_of(node, 1), attr(node, "allowzero", 0)))


def _fold_reshape_like(node, arrays):
    return [arrays[0].reshape(node.outputs[0].shape)]


register("Reshape", INJECTIVE, _reshape, fold=_fold_reshape_like, value_inputs=(1,),
         normalize=lambda n, opset: attr_to_input(n, "shape", 1) if opset < 5 else None)


def _flatten(node):
    s = node.inputs[0].shape
    a = attr(node, "axis", 1)
    a = a + len(s) if a < 0 else a
    if not 0 <= a <= len(s):
        raise ShapeError(f"Flatten: axis out of range for rank {len(s)}")
    return _one(node.inputs[0].dtype, (int(np.prod(s[:a], dtype=np.int64)), int(np.prod(s[a:], dtype=np.int64))))


register("Flatten", INJECTIVE, _flatten, fold=_fold_reshape_like)


def _squeeze(node):
    s = node.inputs[0].shape
    ax = const_of(node, 1)
    if ax is None:
        keep = [d for d in s if d != 1]
    else:
        drop = {axis(a, len(s)) for a in ints(ax)}
        if any(s[a] != 1 for a in drop):
            raise ShapeError("Squeeze: axis of size != 1")
        keep = [d for i, d in enumerate(s) if i not in drop]
    return _one(node.inputs[0].dtype, keep)


def _unsqueeze(node):
    s = list(node.inputs[0].shape)
    ax = ints(const_of(node, 1))
    rank = len(s) + len(ax)
    pos = sorted(axis(a, rank) for a in ax)
    if len(set(pos)) != len(pos):
        raise ShapeError("Unsqueeze: repeated axis")
    for p in pos:
        s.insert(p, 1)
    return _one(node.inputs[0].dtype, s)


def _axes_attr_to_input(opset_limit):
    return lambda n, opset: attr_to_input(n, "axes", 1) if opset < opset_limit else None


register("Squeeze", INJECTIVE, _squeeze, fold=_fold_reshape_like, value_inputs=(1,), normalize=_axes_attr_to_input(13))
register("Unsqueeze", INJECTIVE, _unsqueeze, fold=_fold_reshape_like, value_inputs=(1,), normalize=_axes_attr_to_input(13))


def _bitcast(node):
    """The same bits read as `to`, a type of the same width."""
    x, to = node.inputs[0], dtypes.to_numpy(attr(node, "to"))
    if dtypes.bit_width(to) != dtypes.bit_width(x.dtype):
        raise ShapeError(f"BitCast: {x.dtype} and {to} differ in width")
    return _one(to, x.shape)


register("BitCast", INJECTIVE, _bitcast)


# Transpose / Concat / Split / Slice --------------------------------------------
def transpose_perm(node):
    rank = len(node.inputs[0].shape)
    perm = attr(node, "perm")
    perm = tuple(range(rank))[::-1] if perm is None else tuple(axis(p, rank) for p in perm)
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"Transpose: bad perm {perm}")
    return perm


register("Transpose", INJECTIVE,
         lambda n: _one(n.inputs[0].dtype, [n.inputs[0].shape[p] for p in transpose_perm(n)]),
         fold=lambda n, a: [np.array(np.transpose(a[0], transpose_perm(n)), order="C")])


def _concat(node):
    ins = [v for v in node.inputs if v is not None]
    rank = len(ins[0].shape)
    a = axis(attr(node, "axis", 0 if rank else 0), rank)
    base = list(ins[0].shape)
    for v in ins[1:]:
        if len(v.shape) != rank or any(v.shape[i] != base[i] for i in range(rank) if i != a):
            raise ShapeError("Concat: shapes differ off the axis")
    base[a] = sum(v.shape[a] for v in ins)
    return _one(ins[0].dtype, base)


register("Concat", INJECTIVE, _concat,
         fold=lambda n, a: [np.concatenate(a, axis=axis(attr(n, "axis"), a[0].ndim))])


def split_sizes(node):
    s = node.inputs[0].shape
    a = axis(attr(node, "axis", 0), len(s))
    split = const_of(node, 1)
    n_out = len(node.outputs)
    if split is not None:
        sizes = ints(split)
    else:
        k = attr(node, "num_outputs", n_out)
        chunk = -(-s[a] // k)
        sizes = tuple(min(chunk, max(s[a] - i * chunk, 0)) for i in range(k))
    if sum(sizes) != s[a] or len(sizes) != n_out:
        raise ShapeError(f"Split: sizes {sizes} do not fit dim {s[a]}")
    return a, sizes


def split_slices(node):
    """Each output of a Split with the input window it takes: [(value, [slice per dim])]."""
    a, sizes = split_sizes(node)
    rank = len(node.inputs[0].shape)
    windows, start = [], 0
    for v, k in zip(node.outputs, sizes):
        sl = [slice(None)] * rank
        sl[a] = slice(start, start + k, 1)
        windows.append((v, sl))
        start += k
    return windows


def _split(node):
    a, sizes = split_sizes(node)
    out = []
    for k in sizes:
        s = list(node.inputs[0].shape)
        s[a] = k
        out.append((node.inputs[0].dtype, tuple(s)))
    return out


def _fold_split(node, arrays):
    a, sizes = split_sizes(node)
    return np.split(arrays[0], np.cumsum(sizes)[:-1], axis=a)


register("Split", INJECTIVE, _split, fold=_fold_split, value_inputs=(1,),
         normalize=lambda n, opset: attr_to_input(n, "split", 1) if opset < 13 else None)


def slice_params(node):
    """Per-axis (start, stop, step) normalised as Python slicing sees them."""
    s = node.inputs[0].shape
    starts, ends = ints(const_of(node, 1)), ints(const_of(node, 2))
    ax = const_of(node, 3)
    ax = tuple(range(len(starts))) if ax is None else tuple(axis(a, len(s)) for a in ints(ax))
    steps = const_of(node, 4)
    steps = (1,) * len(starts) if steps is None else ints(steps)
    out = [(0, d, 1) for d in s]
    for a, st, en, sp in zip(ax, starts, ends, steps):
        if sp == 0:
            raise ShapeError("Slice: step 0")
        d = s[a]
        st = st + d if st < 0 else st
        en = en + d if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), d), min(max(en, 0), d)
        else:
            st, en = min(max(st, -1), d - 1), min(max(en, -1), d - 1)
        out[a] = (st, en, sp)
    return out


def _slice_len(st, en, sp):
    return max(0, -(-(en - st) // sp)) if sp > 0 else max(0, -(-(st - en) // -sp))


def _slice_normalize(node, opset):
    if opset < 10:
        for slot, name in ((1, "starts"), (2, "ends"), (3, "axes")):
            attr_to_input(node, name, slot)


def python_slices(node):
    return tuple(slice(st, None if en < 0 else en, sp) for st, en, sp in slice_params(node))


register("Slice", INJECTIVE,
         lambda n: _one(n.inputs[0].dtype, [_slice_len(*p) for p in slice_params(n)]),
         fold=lambda n, a: [np.array(a[0][python_slices(n)], order="C")],
         value_inputs=(1, 2, 3, 4), normalize=_slice_normalize)


# Gather (indices may be a run-time tensor) ----------------------------------------
def _gather(node):
    d, idx = node.inputs
    a = axis(attr(node, "axis", 0), len(d.shape))
    return _one(d.dtype, d.shape[:a] + idx.shape + d.shape[a + 1:])


def _fold_gather(node, arrays):
    d, idx = arrays
    a = axis(attr(node, "axis", 0), d.ndim)
    idx = np.where(idx < 0, idx + d.shape[a], idx)
    if idx.size and (idx.min() < 0 or idx.max() >= d.shape[a]):
        raise ShapeError("Gather: index out of range")
    return [np.take(d, idx, axis=a)]


register("Gather", INJECTIVE, _gather, fold=_fold_gather)


# Expand / Tile / ConstantOfShape / Range / EyeLike ---------------------------------
def _expand(node):
    return _one(node.inputs[0].dtype, broadcast(node.inputs[0].shape, ints(const_of(node, 1))))


register("Expand", INJECTIVE, _expand, value_inputs=(1,),
         fold=lambda n, a: [np.array(np.broadcast_to(a[0], n.outputs[0].shape), order="C")])


def _tile(node):
    reps = ints(const_of(node, 1))
    s = node.inputs[0].shape
    if len(reps) != len(s):
        raise ShapeError("Tile: repeats length differs from rank")
    return _one(node.inputs[0].dtype, [d * r for d, r in zip(s, reps)])


register("Tile", INJECTIVE, _tile, value_inputs=(1,), fold=lambda n, a: [np.tile(a[0], ints(a[1]))])


def _cos_value(node):
    v = attr(node, "value")
    return np.zeros(1, np.float32) if v is None else v


def _constant_of_shape(node):
    shape = ints(const_of(node, 0))
    if any(d < 0 for d in shape):
        raise ShapeError("ConstantOfShape: negative dim")
    return _one(_cos_value(node).dtype, shape)


register("ConstantOfShape", INJECTIVE, _constant_of_shape, value_inputs=(0,),
         fold=lambda n, a: [np.full(n.outputs[0].shape, _cos_value(n).reshape(-1)[0], _cos_value(n).dtype)])


def constant_value(node):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            v = node.attrs[key]
            if key in ("value_float", "value_floats"):
                return np.asarray(v, np.float32)
            if key in ("value_int", "value_ints"):
                return np.asarray(v, np.int64)
            return np.asarray(v)
    raise ShapeError("Constant: only tensor, float(s) and int(s) values are supported")


def _constant(node):
    v = constant_value(node)
    dtypes.to_numpy({np.dtype(k): t for t, k in dtypes.ONNX_TO_NUMPY.items()}.get(v.dtype, -1))
    return _one(v.dtype, v.shape)


register("Constant", INJECTIVE, _constant, fold=lambda n, a: [constant_value(n)])


def _range_len(start, limit, delta):
    start, limit, delta = (float(np.asarray(x).reshape(-1)[0]) for x in (start, limit, delta))  # [1]-shaped too
    return max(int(np.ceil((limit - start) / delta)), 0)


def _range(node):
    start, limit, delta = (const_of(node, i) for i in range(3))
    return _one(node.inputs[0].dtype, [_range_len(start, limit, delta)])


def _fold_range(node, arrays):
    start, _, delta = arrays
    n = node.outputs[0].shape[0]
    return [(start + np.arange(n, dtype=node.outputs[0].dtype) * delta).astype(node.outputs[0].dtype)]


register("Range", INJECTIVE, _range, value_inputs=(0, 1, 2), fold=_fold_range)


def _eyelike_dtype(node):
    to = attr(node, "dtype")
    return node.inputs[0].dtype if to is None else dtypes.to_numpy(to)


register("EyeLike", INJECTIVE, lambda n: _one(_eyelike_dtype(n), n.inputs[0].shape),
         fold=lambda n, a: [np.eye(*n.outputs[0].shape, k=attr(n, "k", 0), dtype=n.outputs[0].dtype)])


# Pad ---------------------------------------------------------------------------
def pad_amounts(node):
    s = node.inputs[0].shape
    pads = ints(const_of(node, 1))
    ax = const_of(node, 3)
    ax = tuple(range(len(s))) if ax is None else tuple(axis(a, len(s)) for a in ints(ax))
    if len(pads) != 2 * len(ax):
        raise ShapeError("Pad: pads length must be twice the axes")
    before, after = [0] * len(s), [0] * len(s)
    for i, a in enumerate(ax):
        before[a], after[a] = pads[i], pads[i + len(ax)]
    return before, after


def _pad_normalize(node, opset):
    if opset < 11:
        node.attrs.setdefault("pads", node.attrs.pop("paddings", None))
        attr_to_input(node, "pads", 1)
        if "value" in node.attrs:
            attr_to_input(node, "value", 2, node.inputs[0].dtype)


def _pad(node):
    before, after = pad_amounts(node)
    shape = [d + b + e for d, b, e in zip(node.inputs[0].shape, before, after)]
    if any(d < 0 for d in shape):
        raise ShapeError("Pad: negative size")
    return _one(node.inputs[0].dtype, shape)


register("Pad", INJECTIVE, _pad, value_inputs=(1, 3), normalize=_pad_normalize)


def _space_depth(node):
    s = node.inputs[0].shape
    b = attr(node, "blocksize")
    n, c, h, w = s
    if node.op == "DepthToSpace":
        return _one(node.inputs[0].dtype, (n, c // (b * b), h * b, w * b))
    return _one(node.inputs[0].dtype, (n, c * b * b, h // b, w // b))


register("DepthToSpace", INJECTIVE, _space_depth)
register("SpaceToDepth", INJECTIVE, _space_depth)
