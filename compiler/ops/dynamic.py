"""Ops whose output shapes depend on input values (registry.DATA_DEPENDENT_SHAPE).

Each specialisation has concrete shapes, so `infer` gives the largest shape
the output can take; the kernel fills a buffer of that size and returns the
count, and the graph returns the filled part. `dynamic_outputs` says which
outputs really vary (Compress by a constant condition does not)."""
from __future__ import annotations

import numpy as np

from ..registry import OPAQUE, register
from .common import ShapeError, attr, axis

I64 = np.dtype(np.int64)


def _nonzero(node):
    x = node.inputs[0]
    return [(I64, (len(x.shape), x.size))]


def compress_axis(node):
    """The axis Compress selects along, or None when it works on the flattened input."""
    a = attr(node, "axis")
    return None if a is None else axis(a, len(node.inputs[0].shape))


def _compress(node):
    x, cond = node.inputs[0], node.inputs[1]
    if len(cond.shape) != 1:
        raise ShapeError("Compress: the condition must be 1-D")
    a = compress_axis(node)
    shape = [x.size] if a is None else list(x.shape)
    k = 0 if a is None else a
    if cond.shape[0] > shape[k]:
        raise ShapeError("Compress: the condition is longer than the axis")
    shape[k] = int(np.count_nonzero(cond.const)) if cond.is_const else cond.shape[0]
    return [(x.dtype, tuple(shape))]


def unique_axis(node):
    a = attr(node, "axis")
    return None if a is None else axis(a, len(node.inputs[0].shape))


def _unique(node):
    x = node.inputs[0]
    a = unique_axis(node)
    n = x.size if a is None else x.shape[a]
    return [(x.dtype, (n,) if a is None else x.shape), (I64, (n,)), (I64, (n,)), (I64, (n,))][:len(node.outputs)]


def _nms(node):
    boxes, scores = node.inputs[0], node.inputs[1]
    if len(boxes.shape) != 3 or boxes.shape[2] != 4 or len(scores.shape) != 3:
        raise ShapeError("NonMaxSuppression: boxes must be (batch, boxes, 4) and scores (batch, classes, boxes)")
    b, c, n = scores.shape
    return [(I64, (b * c * n, 3))]


def dynamic_outputs(node) -> list:
    """The outputs whose shapes depend on input values."""
    if node.op == "Compress" and node.inputs[1].is_const:
        return []
    if node.op == "Unique":
        return [v for i, v in enumerate(node.outputs) if i != 2]   # inverse_indices has one entry per slice
    return list(node.outputs)


register("NonZero", OPAQUE, _nonzero)
register("Compress", OPAQUE, _compress)
register("Unique", OPAQUE, _unique)
register("NonMaxSuppression", OPAQUE, _nms)
