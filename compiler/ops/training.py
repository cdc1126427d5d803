"""The training domain (ai.onnx.preview.training): optimizer update rules.

Inputs are (R, T, X1..Xn, G1..Gn, state1_1..n, ...): each tensor group i is
updated independently with the same rate R and step T; outputs are the new
X's then each new state group, in the inputs' order."""
from __future__ import annotations

from ..registry import OPAQUE, TRAINING, register
from .common import ShapeError

STATES = {"Adagrad": 1, "Momentum": 1, "Adam": 2}   # state tensors per optimized tensor
MOMENTUM_MODES = {"standard": 0, "nesterov": 1}


def groups(node) -> int:
    """n, the number of tensors the node optimizes."""
    per = 2 + STATES[node.op]
    rest = len(node.inputs) - 2
    if rest <= 0 or rest % per:
        raise ShapeError(f"{node.op}: expected 2 + {per}*n inputs")
    return rest // per


def _infer(node):
    n = groups(node)
    xs = node.inputs[2:2 + n]
    if len(node.outputs) > n * (1 + STATES[node.op]):
        raise ShapeError(f"{node.op}: too many outputs")
    return [(v.dtype, v.shape) for v in (xs * (1 + STATES[node.op]))][:len(node.outputs)]


for _op in STATES:
    register(_op, OPAQUE, _infer, domain=TRAINING)
