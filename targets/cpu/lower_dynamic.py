"""CPU lowerings of data-dependent-shape ops (compiler/ops/dynamic.py). NonZero and
Compress (targets/cpu/kernels/dynamic.py) fill a maximal buffer and return the count,
and the output is the filled slice; Unique and NonMaxSuppression (kernels/indexing.py)
return arrays of their own size."""
from __future__ import annotations

import numpy as np

from compiler.ops.dynamic import compress_axis, unique_axis

from . import source
from .lower import lower


def _prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64))


def _around(shape, a):
    return (_prod(shape[:a]), shape[a], _prod(shape[a + 1:]))


def _dims(shape, a, count: str) -> str:
    """A shape tuple's source with dim a replaced by the variable `count`."""
    parts = [count if i == a else repr(int(d)) for i, d in enumerate(shape)]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _scalar(em, v, default, dtype):
    """An optional 1-element input as a scalar expression, or the default when omitted or empty."""
    if v is None or v.size == 0:
        return source.num(default)
    return f"{dtype}({em[v]}.reshape({v.size})[0])"


@lower("NonZero")
def _nonzero(node, em):
    x, out = node.inputs[0], node.outputs[0]
    buf, n = em.tmp(), em.tmp()
    em.emit(f"{buf} = {em.empty(out.shape, np.int64)}")
    em.emit(f"{n} = {em.lib('dynamic')}.nonzero({em[x]}.reshape({x.size}), "
            f"{em.const(np.asarray(x.shape, np.int64))}, {buf})")
    em.define(out, f"{buf}[:, :{n}].copy()")


@lower("Compress")
def _compress(node, em):
    x, cond, out = node.inputs[0], node.inputs[1], node.outputs[0]
    a = compress_axis(node)
    shape = (x.size,) if a is None else x.shape
    a = a or 0
    o, _, i = _around(shape, a)
    buf, n = em.tmp(), em.tmp()
    em.emit(f"{buf} = {em.empty((o, shape[a], i), x.dtype)}")
    em.emit(f"{n} = {em.lib('dynamic')}.compress({em[x]}.reshape({source.ints(_around(shape, a))}), "
            f"{em[cond]}, {buf})")
    em.define(out, f"{buf}[:, :{n}, :].copy().reshape({_dims(shape, a, n)})")


@lower("Unique")
def _unique(node, em):
    x = node.inputs[0]
    a = unique_axis(node)
    shape = (x.size,) if a is None else x.shape
    a = a or 0
    y, first, inverse, counts = em.tmp(), em.tmp(), em.tmp(), em.tmp()
    em.emit(f"{y}, {first}, {inverse}, {counts} = {em.lib('indexing')}.unique("
            f"{em[x]}.reshape({source.ints(_around(shape, a))}), "
            f"{bool(node.attrs.get('sorted', 1))})")
    exprs = [f"{y}.reshape({_dims(shape, a, f'{y}.shape[1]')})", first, inverse, counts]
    for v, e in zip(node.outputs, exprs):
        em.define(v, e)


@lower("NonMaxSuppression")
def _nms(node, em):
    boxes, scores, out = node.inputs[0], node.inputs[1], node.outputs[0]
    max_out, iou, score = node.input(2), node.input(3), node.input(4)
    use_score = score is not None and score.size > 0
    em.define(out, f"{em.lib('indexing')}.nonmax_suppression({em[boxes]}, {em[scores]}, "
                   f"{_scalar(em, max_out, 0, 'np.int64')}, {_scalar(em, iou, 0.0, 'np.float64')}, "
                   f"{_scalar(em, score, 0.0, 'np.float64')}, {use_score}, "
                   f"{int(node.attrs.get('center_point_box', 0))})")
