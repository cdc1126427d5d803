"""Recurrent ops (RNN, GRU, LSTM): shape rules and their attribute tables.

Outputs Y [seq, dirs, batch, hidden], Y_h and Y_c [dirs, batch, hidden]
(layout=1: batch first). Any output may be absent (an empty name)."""
from __future__ import annotations

from ..registry import OPAQUE, register
from .common import ShapeError, attr

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
# The activations ONNX names per direction, and their defaults.
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}


def num_directions(node) -> int:
    d = attr(node, "direction", "forward")
    if d not in DIRECTIONS:
        raise ShapeError(f"{node.op}: unknown direction {d!r}")
    return DIRECTIONS[d]


def hidden_size(node) -> int:
    return int(attr(node, "hidden_size", node.inputs[2].shape[-1]))


def _infer(node):
    x, w, r = node.inputs[:3]
    layout = attr(node, "layout", 0)
    if len(x.shape) != 3 or len(w.shape) != 3 or len(r.shape) != 3:
        raise ShapeError(f"{node.op}: X, W and R must be rank 3")
    seq, batch = (x.shape[1], x.shape[0]) if layout else x.shape[:2]
    nd, h, g = num_directions(node), hidden_size(node), GATES[node.op]
    if w.shape != (nd, g * h, x.shape[2]) or r.shape != (nd, g * h, h):
        raise ShapeError(f"{node.op}: W {w.shape} or R {r.shape} do not fit X {x.shape}, hidden_size {h}")
    y = (batch, seq, nd, h) if layout else (seq, nd, batch, h)
    state = (batch, nd, h) if layout else (nd, batch, h)
    return [(x.dtype, y), (x.dtype, state), (x.dtype, state)][:len(node.outputs)]


def _normalize(node, opset):
    node.attrs.pop("output_sequence", None)     # RNN-1: Y is optional like any output now


for _op in GATES:
    register(_op, OPAQUE, _infer, normalize=_normalize, max_outputs=3 if _op == "LSTM" else 2)
