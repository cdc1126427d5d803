"""Conv + BatchNormalization folding: when the BN's parameters and the conv's
weights are compile-time constants and the conv feeds only the BN, the BN
becomes part of the conv's weights and bias (onnxruntime's ConvBNFusion):
    s = scale / sqrt(var + eps);  W' = W * s (per output channel);  B' = (B - mean) * s + bias.
Weight preprocessing at compile time, done on the host in float64 and rounded
once to the weights' dtype; it changes rounding, so it runs only with fusion on."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value


def _foldable(conv: Node, bn: Node) -> bool:
    params = [conv.inputs[1], conv.input(2), *bn.inputs[1:5]]
    return (bn.op == "BatchNormalization" and len(bn.outputs) == 1 and not bn.attrs.get("training_mode", 0)
            and bn.inputs[0] is conv.outputs[0] and all(v is None or v.is_const for v in params)
            and conv.inputs[1].dtype.kind == "f"
            and all(v.shape == (conv.inputs[1].shape[0],) for v in bn.inputs[1:5]))


def fold_conv_batchnorm(graph: Graph) -> Graph:
    users = graph.consumers()
    outputs = set(graph.outputs)
    replaced: dict = {}    # id(BN node) -> folded conv
    dropped: set = set()   # ids of convs folded into their BN
    for n in graph.nodes:
        if n.op != "Conv" or n.domain:
            continue
        y = n.outputs[0]
        u = users.get(y, [])
        if len(u) != 1 or y in outputs or not _foldable(n, u[0]):
            continue
        bn = u[0]
        w = n.inputs[1]
        scale, bias, mean, var = (v.const.astype(np.float64) for v in bn.inputs[1:5])
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        b0 = n.input(2).const.astype(np.float64) if n.input(2) is not None else 0.0
        w_new = (w.const.astype(np.float64) * s.reshape((-1,) + (1,) * (len(w.shape) - 1))).astype(w.dtype)
        b_new = ((b0 - mean) * s + bias).astype(w.dtype)
        inputs = [n.inputs[0], Value(w.name + "/bn", w.dtype, w.shape, w_new),
                  Value(w.name + "/bn_bias", w.dtype, b_new.shape, b_new)]
        replaced[id(bn)] = Node("Conv", inputs, list(bn.outputs), dict(n.attrs), n.name, n.domain, n.version)
        dropped.add(id(n))
    nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in dropped]
    return Graph(graph.inputs, graph.outputs, nodes)
