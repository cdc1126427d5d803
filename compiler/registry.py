"""The op registry: per ONNX op, its shape rule, fusion kind, host folding and lowerings.

Ops are registered by compiler.ops.*; targets add their lowering with
`lowering(op, target)`. Fusion works on kinds, never on op names (TVM's idea).
Each ONNX domain has its own table: the standard one is REGISTRY, keyed by op
name; others (ai.onnx.ml) register with `domain=`.
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

# Ops whose output shapes depend on input values (compiler/ops/dynamic.py): the IR
# gives them a maximal shape, the kernel returns the count, and the graph returns
# a slice -- so, for now, their data-dependent outputs may only be graph outputs
# (compiler/passes/dynamic.py checks it).
DATA_DEPENDENT_SHAPE = frozenset({"NonZero", "Compress", "Unique", "NonMaxSuppression"})


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
    domain: str = ""


STD, ML, TRAINING = "", "ai.onnx.ml", "ai.onnx.preview.training"
REGISTRY: dict[str, OpDef] = {}                   # the standard domain
DOMAINS: dict[str, dict] = {STD: REGISTRY, ML: {}, TRAINING: {}}


def domain_key(domain: str) -> str:
    """"" and "ai.onnx" both name the standard domain."""
    return STD if domain in ("", "ai.onnx") else domain


def register(op, kind, infer, fold=None, value_inputs=(), normalize=None, max_outputs=None, domain=STD):
    assert kind in KINDS, kind
    table = DOMAINS[domain_key(domain)]
    table[op] = OpDef(op, kind, infer, fold, tuple(value_inputs), normalize, max_outputs, domain=domain_key(domain))
    return table[op]


def lowering(op: str, target: str, domain: str = STD):
    """Decorator: the target's lowering of `op` (the op must be registered first)."""
    def deco(fn):
        DOMAINS[domain_key(domain)][op].lower[target] = fn
        return fn
    return deco


def lookup(op: str, domain: str = "") -> OpDef | None:
    return DOMAINS.get(domain_key(domain), {}).get(op)
