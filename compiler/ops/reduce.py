"""Reductions and the normalisations over one axis (Softmax family, ArgMax...)."""
from __future__ import annotations

import numpy as np

from ..registry import REDUCTION, register
from .common import ShapeError, attr, attr_to_input, axis, const_of, ints

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def reduce_axes(node):
    """Normalised reduced axes, or () for a no-op reduction."""
    rank = len(node.inputs[0].shape)
    ax = const_of(node, 1)
    if ax is None or len(ax) == 0:
        return () if attr(node, "noop_with_empty_axes", 0) else tuple(range(rank))
    return tuple(sorted({axis(a, rank) for a in ints(ax)}))


def reduce_shape(node, ax):
    s = node.inputs[0].shape
    if attr(node, "keepdims", 1):
        return tuple(1 if i in ax else d for i, d in enumerate(s))
    return tuple(d for i, d in enumerate(s) if i not in ax)


def _reduce(node):
    return [(node.inputs[0].dtype, reduce_shape(node, reduce_axes(node)))]


def _reduce_normalize(limit):
    return lambda n, opset: attr_to_input(n, "axes", 1) if opset < limit else None


for _op in REDUCE_OPS:
    register(_op, REDUCTION, _reduce, value_inputs=(1,),
             normalize=_reduce_normalize(13 if _op == "ReduceSum" else 18))


def _arg(node):
    a = axis(attr(node, "axis", 0), len(node.inputs[0].shape))
    return [(np.dtype(np.int64), reduce_shape(node, (a,)))]


register("ArgMax", REDUCTION, _arg)
register("ArgMin", REDUCTION, _arg)


def softmax_axis(node):
    """(axis, coerce2d): before opset 13 the input is flattened to 2-D at `axis`."""
    rank = len(node.inputs[0].shape)
    coerce = node.attrs.get("_coerce2d", False)
    return axis(attr(node, "axis", 1 if coerce else -1), rank), coerce


def _softmax_normalize(node, opset):
    node.attrs["_coerce2d"] = opset < 13


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    register(_op, REDUCTION, lambda n: [(n.inputs[0].dtype, n.inputs[0].shape)], normalize=_softmax_normalize)


def lp_norm_p(node) -> int:
    p = int(attr(node, "p", 2))
    if p not in (1, 2):
        raise ShapeError(f"LpNormalization: p={p}, only 1 and 2 are defined")
    return p


def _lp_normalization(node):
    lp_norm_p(node)
    axis(attr(node, "axis", -1), len(node.inputs[0].shape))
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


register("LpNormalization", REDUCTION, _lp_normalization)
