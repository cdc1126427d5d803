"""Rewrite composite ops into simpler registered ones, so targets lower fewer
ops and the fusion pass sees the elementwise parts (Gemm's epilogue, BatchNorm)."""
from __future__ import annotations

import numpy as np

from ..dtypes import is_small_float
from ..ir import Graph, Node, Value
from ..ops.common import attr
from ..ops.reduce import softmax_axis
from ..registry import lookup
from .fold import fold_node

LATEST = 10 ** 6   # nodes we make use the newest form of each op


class Builder:
    def __init__(self, origin: Node):
        self.origin = origin
        self.nodes: list[Node] = []

    def const(self, array) -> Value:
        array = np.asarray(array)
        return Value(f"{self.origin.name}/const", array.dtype, array.shape, array)

    def op(self, op, inputs, out: Value | None = None, **attrs) -> Value:
        node = Node(op, list(inputs), [out or Value(f"{self.origin.name}/{op}", None, ())], attrs,
                    self.origin.name, "", LATEST)
        (dt, shape), = lookup(op).infer(node)
        if out is None:
            node.outputs[0].dtype, node.outputs[0].shape = np.dtype(dt), tuple(shape)
        if not fold_node(node):
            self.nodes.append(node)
        return node.outputs[0]


def _gemm(n: Node, b: Builder):
    a, w = n.inputs[0], n.inputs[1]
    c = n.input(2)
    dt = n.outputs[0].dtype
    if attr(n, "transA", 0):
        a = b.op("Transpose", [a], perm=[1, 0])
    if attr(n, "transB", 0):
        w = b.op("Transpose", [w], perm=[1, 0])
    alpha, beta = float(attr(n, "alpha", 1.0)), float(attr(n, "beta", 1.0))
    last = c is None and alpha == 1.0
    y = b.op("MatMul", [a, w], out=n.outputs[0] if last else None)
    if alpha != 1.0:
        y = b.op("Mul", [y, b.const(np.asarray(alpha, dt))], out=n.outputs[0] if c is None else None)
    if c is not None:
        if beta != 1.0:
            c = b.op("Mul", [c, b.const(np.asarray(beta, dt))])
        b.op("Add", [y, c], out=n.outputs[0])


def _batchnorm(n: Node, b: Builder):
    x, scale, bias, mean, var = n.inputs[:5]
    dt = x.dtype
    per_channel = (x.shape[1],) + (1,) * (len(x.shape) - 2)
    shape = b.const(np.asarray(per_channel, np.int64))
    scale, bias, mean, var = (b.op("Reshape", [v, shape]) for v in (scale, bias, mean, var))
    if attr(n, "training_mode", 0):
        mean, var = _batch_stats(n, b, mean, var)
    eps = b.const(np.asarray(attr(n, "epsilon", 1e-5), dt))
    factor = b.op("Div", [scale, b.op("Sqrt", [b.op("Add", [var, eps])])])
    centred = b.op("Sub", [x, mean])
    b.op("Add", [b.op("Mul", [centred, factor]), bias], out=n.outputs[0])


def _softmax(n: Node, b: Builder):
    """A float16/bfloat16 Softmax runs at its input's precision (the Attention spec's
    default softmax_precision; onnx.reference likewise): the function body's steps,
    each rounding to the input type. Other Softmax nodes stay one kernel."""
    x = n.inputs[0]
    a, coerce = softmax_axis(n)
    if coerce or not is_small_float(x.dtype):
        b.nodes.append(n)
        return
    axes = b.const(np.asarray([a], np.int64))
    e = b.op("Exp", [b.op("Sub", [x, b.op("ReduceMax", [x, axes], keepdims=1)])])
    b.op("Div", [e, b.op("ReduceSum", [e, axes], keepdims=1)], out=n.outputs[0])




def _batch_stats(n: Node, b: Builder, running_mean, running_var):
    """Training mode: the batch's mean and (biased) variance per channel, and
    the running statistics updated with `momentum` as extra outputs."""
    x = n.inputs[0]
    axes = b.const(np.asarray([0] + list(range(2, len(x.shape))), np.int64))
    mean = b.op("ReduceMean", [x, axes])
    centred = b.op("Sub", [x, mean])
    var = b.op("ReduceMean", [b.op("Mul", [centred, centred]), axes])
    m = float(attr(n, "momentum", 0.9))
    flat = b.const(np.asarray([x.shape[1]], np.int64))
    for old, new, out in zip((running_mean, running_var), (mean, var), n.outputs[1:]):
        kept = b.op("Mul", [old, b.const(np.asarray(m, x.dtype))])
        b.op("Reshape", [b.op("Add", [kept, b.op("Mul", [new, b.const(np.asarray(1 - m, x.dtype))])]), flat], out=out)
    return mean, var


DECOMPOSE = {"Gemm": _gemm, "BatchNormalization": _batchnorm, "Softmax": _softmax}


def decompose(graph: Graph) -> Graph:
    nodes = []
    for n in graph.nodes:
        fn = DECOMPOSE.get(n.op)
        if fn is None:
            nodes.append(n)
            continue
        b = Builder(n)
        fn(n, b)
        nodes.extend(b.nodes)
    return Graph(graph.inputs, graph.outputs, nodes)
