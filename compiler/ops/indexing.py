"""Index and sort ops: gathers, scatters, TopK, cumulative sums, Trilu, OneHot."""
from __future__ import annotations

import numpy as np

from ..registry import INJECTIVE, OPAQUE, register
from .common import ShapeError, attr, attr_to_input, axis, const_of, ints

I64 = np.dtype(np.int64)


def _same(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


register("GatherElements", INJECTIVE, lambda n: [(n.inputs[0].dtype, n.inputs[1].shape)])
register("ScatterElements", OPAQUE, _same)
register("Scatter", OPAQUE, _same)
register("ScatterND", OPAQUE, _same)


def _gather_nd(node):
    d, i = node.inputs[0].shape, node.inputs[1].shape
    b = attr(node, "batch_dims", 0)
    k = i[-1]
    if k > len(d) - b:
        raise ShapeError("GatherND: index depth exceeds the data rank")
    return [(node.inputs[0].dtype, tuple(i[:-1]) + tuple(d[b + k:]))]


register("GatherND", INJECTIVE, _gather_nd)


def topk_k(node):
    return int(ints(const_of(node, 1))[0])


def _topk(node):
    s = list(node.inputs[0].shape)
    a = axis(attr(node, "axis", -1), len(s))
    k = topk_k(node)
    if not 0 <= k <= s[a]:
        raise ShapeError(f"TopK: k={k} out of range")
    s[a] = k
    return [(node.inputs[0].dtype, tuple(s)), (I64, tuple(s))]


register("TopK", OPAQUE, _topk, value_inputs=(1,),
         normalize=lambda n, opset: attr_to_input(n, "k", 1, np.int64) if opset < 10 else None)
register("CumSum", OPAQUE, _same, value_inputs=(1,))
register("CumProd", OPAQUE, _same, value_inputs=(1,))
register("Trilu", OPAQUE, _same, value_inputs=(1,))
register("ReverseSequence", OPAQUE, _same)


def _one_hot(node):
    depth = int(np.asarray(const_of(node, 1)).reshape(-1)[0])
    s = list(node.inputs[0].shape)
    a = axis(attr(node, "axis", -1), len(s) + 1)
    s.insert(a, depth)
    return [(node.inputs[2].dtype, tuple(s))]


register("OneHot", OPAQUE, _one_hot, value_inputs=(1,))


def tensor_scatter_axis(node) -> int:
    """TensorScatter's sequence axis; dim 0 is the batch the write indices run over."""
    c, u = node.inputs[0].shape, node.inputs[1].shape
    a = axis(attr(node, "axis", -2), len(c))
    if a == 0 or len(u) != len(c) or any(c[i] != u[i] for i in range(len(c)) if i != a) or u[a] > c[a]:
        raise ShapeError(f"TensorScatter: update {u} does not fit cache {c} on axis {a}")
    if attr(node, "mode", "linear") not in ("linear", "circular"):
        raise ShapeError(f"TensorScatter: unknown mode {attr(node, 'mode')!r}")
    return a


def _tensor_scatter(node):
    tensor_scatter_axis(node)
    return _same(node)


register("TensorScatter", OPAQUE, _tensor_scatter)
