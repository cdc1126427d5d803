"""Conv epilogues: a Conv whose output feeds only a same-shape Add (a residual)
and/or one activation takes them into its output loop, as onnxruntime's
FusedConv does: y = act(conv(x, w) + b [+ residual]). One pass over memory
instead of three. The fused node stays a "Conv" with a fourth input (the
residual, or None) and attributes `_act`, `_alpha`, `_beta`; targets that do
not know them must not run this pass (the CPU target runs it when fusion is on)."""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, Node

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _scalar(v, default):
    if v is None:
        return default
    if v.const is None or v.const.size != 1:
        return None
    return float(v.const.reshape(()))


def _clip(n):
    lo, hi = _scalar(n.input(1), -math.inf), _scalar(n.input(2), math.inf)
    return None if lo is None or hi is None else (lo, hi)


# op -> its (alpha, beta) for the kernel, or None when this form cannot fuse.
ACTIVATIONS = {
    "Relu": lambda n: (0.0, 0.0),
    "Sigmoid": lambda n: (0.0, 0.0),
    "HardSwish": lambda n: (0.0, 0.0),
    "Clip": _clip,
    "HardSigmoid": lambda n: (float(n.attrs.get("alpha", 0.2)), float(n.attrs.get("beta", 0.5))),
    "LeakyRelu": lambda n: (float(n.attrs.get("alpha", 0.01)), 0.0),
}


class _Uses:
    def __init__(self, graph: Graph):
        self.users = graph.consumers()
        self.outputs = set(graph.outputs)

    def sole(self, v):
        """The one node reading `v` (once), unless v is a graph output."""
        u = self.users.get(v, [])
        return u[0] if len(u) == 1 and v not in self.outputs else None

    def silu(self, v):
        """(Sigmoid, Mul) when v's only readers compute v * sigmoid(v)."""
        u = self.users.get(v, [])
        if len(u) != 2 or v in self.outputs:
            return None
        s = next((n for n in u if n.op == "Sigmoid"), None)
        m = next((n for n in u if n.op == "Mul"), None)
        if s is None or m is None or self.sole(s.outputs[0]) is not m or set(m.inputs) != {v, s.outputs[0]}:
            return None
        return s, m


def _match(conv: Node, uses: _Uses):
    """(absorbed nodes, residual Value or None, activation name or None, alpha, beta)."""
    v = conv.outputs[0]
    absorbed, res = [], None
    u = uses.sole(v)
    if u is not None and u.op == "Add" and len(u.inputs) == 2 and u.inputs[0] is not u.inputs[1]:
        other = u.inputs[1] if u.inputs[0] is v else u.inputs[0]
        if other.shape == v.shape and other.dtype == v.dtype and u.outputs[0].dtype == v.dtype:
            absorbed.append(u)
            res, v = other, u.outputs[0]
            u = uses.sole(v)
    silu = uses.silu(v)
    if silu is not None:
        return absorbed + list(silu), res, "Silu", 0.0, 0.0
    if u is not None and u.op in ACTIVATIONS and u.inputs[0] is v:
        params = ACTIVATIONS[u.op](u)
        if params is not None:
            return absorbed + [u], res, u.op, *params
    return absorbed, res, None, 0.0, 0.0


def fuse_conv_epilogues(graph: Graph) -> Graph:
    uses = _Uses(graph)
    at: dict = {}          # id(last absorbed node) -> fused conv that replaces it
    drop: set = set()      # ids of nodes absorbed (each by one conv only)
    for n in graph.nodes:
        if n.op != "Conv" or n.domain or n.inputs[0].dtype not in FLOATS or id(n) in drop:
            continue
        absorbed, res, act, alpha, beta = _match(n, uses)
        if not absorbed or any(id(m) in drop or id(m) in at for m in absorbed):
            continue
        x, w = n.inputs[0], n.inputs[1]
        fused = Node("Conv", [x, w, n.input(2), res], [absorbed[-1].outputs[0]],
                     dict(n.attrs, _act=act, _alpha=alpha, _beta=beta), n.name, n.domain, n.version)
        drop.add(id(n))
        drop.update(id(m) for m in absorbed[:-1])
        at[id(absorbed[-1])] = fused
    nodes = [at.get(id(n), n) for n in graph.nodes if id(n) not in drop]
    return Graph(graph.inputs, graph.outputs, nodes)
