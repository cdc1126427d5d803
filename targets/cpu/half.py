"""Half-precision values (float16, bfloat16; float8, float4 and the 4- and
2-bit integers alike) in the graph function.

Numba has no half arithmetic on the CPU, so a half value lives as a uint16
(the smaller types: uint8) array of its bit patterns (the runtime views the
model's inputs and outputs that way). Then:
- lowerings that only move elements (reshape, gather, pad...) run unchanged
  on those bits;
- fused elementwise kernels widen each load to float32 and narrow each half
  result, rounding to nearest even (targets/cpu/elementwise.py);
- every other lowering runs unchanged on float32: its half inputs are widened
  into scratch arrays and its half outputs narrowed back afterwards.
One rule for all compute ops keeps every kernel library free of half cases,
at the price of a scratch copy per half operand.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from compiler.dtypes import is_held
from compiler.ir import Node, Value
from compiler.ops.common import attr

from . import source

BIT_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Slice", "Split",
           "Dropout", "DepthToSpace", "SpaceToDepth", "Tile", "Pad", "Gather", "GatherElements",
           "GatherND", "OneHot", "ReverseSequence", "Trilu", "BitCast", "Compress"}
SCATTERS = {"Scatter", "ScatterElements", "ScatterND"}   # bit movers unless they reduce


CODES = {np.dtype(t): i for i, t in enumerate((
    np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
    ml_dtypes.float8_e5m2fnuz, ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e8m0fnu, ml_dtypes.int4, ml_dtypes.uint4,
    ml_dtypes.int2, ml_dtypes.uint2))}   # as in kernels/half.py
ROUND_MODES = {"up": 0, "down": 1, "nearest": 2}   # Cast's round_mode (float8e8m0), as in kernels/half.py


def code(dtype) -> str:
    """The type code the kernels in targets/cpu/kernels/half.py take."""
    return str(CODES[np.dtype(dtype)])


def mode(node) -> str:
    """How `node` narrows (kernels/half.py's `mode`): Cast's and QuantizeLinear's
    `saturate` (float8: out-of-range values clamp, else become Inf/NaN) and
    Cast's `round_mode` (float8e8m0)."""
    sat = attr(node, "saturate", 1) if node.op in ("Cast", "QuantizeLinear") else 1
    rnd = attr(node, "round_mode", "up") if node.op == "Cast" else "up"
    if rnd not in ROUND_MODES:
        raise NotImplementedError(f"Cast: round_mode {rnd!r}")
    return str((1 if sat else 0) | ROUND_MODES[rnd] << 1)


def moves_bits(node) -> bool:
    if node.op in SCATTERS:
        return attr(node, "reduction", "none") == "none"
    return node.op in BIT_OPS or node.op == "Fused"


def lower(node, em, fn):
    """Lower `node` with `fn`, through float32 copies when it computes on halves."""
    values = [v for v in node.inputs + node.outputs if v is not None]
    if moves_bits(node) or not any(is_held(v.dtype) for v in values):
        return fn(node, em)
    ins = [None if v is None else widened(em, v) for v in node.inputs]
    outs = [Value(v.name, np.dtype(np.float32), v.shape) if is_held(v.dtype) else v for v in node.outputs]
    fn(Node(node.op, ins, outs, node.attrs, node.name, node.domain, node.version), em)
    for v, w in zip(node.outputs, outs):
        if w is not v:     # shaped as computed: a data-dependent output is smaller than its IR shape
            res = em.define(v, f"{em.EMPTY}({em[w]}.shape, {source.dtype_name(v.dtype)})")
            em.emit(f"{em.lib('half')}.narrow_array({em[w]}, {res}, {code(v.dtype)}, {mode(node)})")


def widened(em, v):
    """A float32 Value holding half `v` (a compile-time constant stays one)."""
    if not is_held(v.dtype):
        return v
    if v not in em.widened:
        if v.is_const:
            em.widened[v] = Value(v.name, np.dtype(np.float32), v.shape, v.const.astype(np.float32))
        else:
            w = Value(v.name, np.dtype(np.float32), v.shape)
            res = em.alloc(w)
            em.emit(f"{em.lib('half')}.widen_array({em[v]}, {res}, {code(v.dtype)})")
            em.widened[v] = w
    return em.widened[v]
