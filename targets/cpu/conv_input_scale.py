"""Per-channel input scales folded into the conv's filters: Conv(x * s, W) with s of shape
(1, C, 1, 1), as a squeeze-excite block ends, becomes Conv(x, W * s), the filters scaled at run
time (s is computed by the model) instead of the feature map. Like TVM's FoldScaleAxis, but for a
scale known only at run time, so only where scaling M * C filters costs less than C * H * W
activations, i.e. fewer output channels than positions.

Why: se_cnn's three early SE blocks multiplied 100K, 50K and 25K floats (9.1, 5.0, 2.9 us at one
thread) that the following pointwise conv then read; their filters are 512 to 8K floats (scaled
in 0.2-1.5 us). se_cnn, both forms compiled in one process and interleaved, two runs: 1.9% and
2.9% faster at one thread, 1.9% and 2.5% at two. The
fused node stays a "Conv" with the scale as a fifth input (after the epilogue pass's residual)
and `_in_scale` set; lower_nn takes it on kernels/conv_small.py only (conv_small.scale_panels),
so this pass folds only convs that lowering will run there. CPU target only."""
from __future__ import annotations

import numpy as np

from compiler.ir import Graph, Node
from compiler.ops import nn as nn_ops
from compiler.ops.common import attr

from . import lower_nn


def _channel_scale(mul: Node, x_shape):
    """(the scaled tensor, the scale) when `mul` is x * s with s one float a channel, else None."""
    if mul.op != "Mul" or mul.domain or len(mul.inputs) != 2:
        return None
    for a, s in (mul.inputs, mul.inputs[::-1]):
        if (tuple(a.shape) == tuple(x_shape) and tuple(s.shape) == (1, x_shape[1], 1, 1)
                and not s.is_const and s.dtype == a.dtype):
            return a, s
    return None


def _foldable(conv: Node) -> bool:
    """A float32 one-image 1x1 conv that lowering runs on conv_small, with fewer output
    channels than output positions (scaling its filters is the cheaper side)."""
    x, w, out = conv.inputs[0], conv.inputs[1], conv.outputs[0]
    if conv.domain or len(conv.inputs) > 4 or x.dtype != np.float32 or len(x.shape) != 4 or x.shape[0] != 1:
        return False
    if not w.is_const or tuple(w.shape[2:]) != (1, 1) or int(attr(conv, "group", 1)) != 1:
        return False
    act = lower_nn.ACT_CODES.get(attr(conv, "_act"))
    if act is None or not lower_nn.takes_conv_small(conv, nn_ops.conv_geometry(conv), act):
        return False
    return w.shape[0] < out.shape[2] * out.shape[3]


def fold_input_scales(graph: Graph) -> Graph:
    producer = {o: n for n in graph.nodes for o in n.outputs}
    users, outputs = graph.consumers(), set(graph.outputs)
    fused, drop = {}, set()
    for n in graph.nodes:
        if n.op != "Conv" or not _foldable(n):
            continue
        x = n.inputs[0]
        mul = producer.get(x)
        if mul is None or x in outputs or len(users.get(x, [])) != 1 or id(mul) in drop:
            continue
        found = _channel_scale(mul, x.shape)
        if found is None:
            continue
        a, s = found
        inputs = [a, n.inputs[1], n.input(2), n.input(3), s]
        fused[id(n)] = Node("Conv", inputs, n.outputs, dict(n.attrs, _in_scale=1), n.name, n.domain, n.version)
        drop.add(id(mul))
    nodes = [fused.get(id(n), n) for n in graph.nodes if id(n) not in drop]
    return Graph(graph.inputs, graph.outputs, nodes)
