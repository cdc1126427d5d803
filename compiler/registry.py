"""The op registry: per ONNX op, its shape rule, fusion kind, host folding and lowerings.

Ops are registered by compiler.ops.*; targets add their lowering with
`lowering(op, target)`. Fusion works on kinds, never on op names (TVM's idea).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# Fusion kinds, from most to least fusable.
ELEMENTWISE = "elementwise"      # same-shape scalar function of its inputs
BROADCAST = "broadcast"          # elementwise with numpy broadcasting
INJECTIVE = "injective"          # data movement: reshape, transpose, slice, gather
REDUCTION = "reduction"
OUT_FUSABLE = "out-elementwise-fusable"   # matmul, conv: an epilogue may fuse in
OPAQUE = "opaque"
KINDS = (ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION, OUT_FUSABLE, OPAQUE)


@dataclass
class OpDef:
    op: str
    kind: str
    infer: Callable                 # node -> [(dtype, shape), ...] for its outputs
    fold: Callable | None = None    # (node, [ndarray]) -> [ndarray]: host shape arithmetic only
    value_inputs: tuple = ()        # input slots whose *values* decide output shapes
    normalize: Callable | None = None   # (node, opset) -> None: older opsets to the newest form
    max_outputs: int | None = None  # outputs beyond this are unsupported
    lower: dict = field(default_factory=dict)   # target name -> lowering function


REGISTRY: dict[str, OpDef] = {}


def register(op, kind, infer, fold=None, value_inputs=(), normalize=None, max_outputs=None):
    assert kind in KINDS, kind
    REGISTRY[op] = OpDef(op, kind, infer, fold, tuple(value_inputs), normalize, max_outputs)
    return REGISTRY[op]


def lowering(op: str, target: str):
    """Decorator: the target's lowering of `op` (the op must be registered first)."""
    def deco(fn):
        REGISTRY[op].lower[target] = fn
        return fn
    return deco


def lookup(op: str, domain: str = "") -> OpDef | None:
    if domain not in ("", "ai.onnx"):
        return None
    return REGISTRY.get(op)
