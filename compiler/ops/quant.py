"""Quantized ops: (De)QuantizeLinear, DynamicQuantizeLinear and the integer
matrix products and convolutions (MatMulInteger, ConvInteger, QLinear*).

Every opset form is normalised to the newest one: explicit `axis`,
`block_size` and `output_dtype` attributes. A per-axis scale known at compile
time is reshaped so it broadcasts numpy-style; then the op renders as a scalar
expression and fuses with its elementwise neighbours."""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import dtypes
from ..ir import Node, Value
from ..registry import BROADCAST, OPAQUE, OUT_FUSABLE, register
from .common import ShapeError, attr, axis
from .nn import conv_geometry, matmul_shape

INT_RANGES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
              for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}
INT_RANGES.update({np.dtype(t): (int(ml_dtypes.iinfo(t).min), int(ml_dtypes.iinfo(t).max))
                   for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)})
# Float targets: x / scale rounded to the type (float4 adds its zero point first; float8's must be 0).
QUANT_FLOATS = {np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
                                      ml_dtypes.float8_e5m2fnuz, ml_dtypes.float4_e2m1fn)}


def _as_axis_shape(v: Value, rank: int, a: int, name: str) -> Value:
    """A constant per-axis vector (C,) as (1,..,C,..,1): it then broadcasts numpy-style."""
    if v is None or v.const is None or len(v.shape) != 1 or v.size == 1 or rank <= 1:
        return v
    shape = tuple(v.size if d == a else 1 for d in range(rank))
    return Value(name, v.dtype, shape, v.const.reshape(shape))


def _common_normalize(node: Node, out_dtype):
    x = node.inputs[0]
    per_tensor = all(v is None or v.size == 1 for v in node.inputs[1:3])
    node.attrs["axis"] = 0 if per_tensor else axis(attr(node, "axis", 1), len(x.shape))
    node.attrs["block_size"] = int(attr(node, "block_size", 0))
    node.attrs["output_dtype"] = dtypes.from_numpy(out_dtype)
    if node.attrs["block_size"] == 0:
        a = node.attrs["axis"]
        node.inputs[1:3] = [_as_axis_shape(v, len(x.shape), a, f"{node.name}/{k}")
                            for k, v in zip(("scale", "zero_point"), node.inputs[1:3])]


def _quantize_normalize(node, opset):
    zp, given = node.input(2), attr(node, "output_dtype", 0)
    out = zp.dtype if zp is not None else dtypes.to_numpy(given) if given else np.dtype(np.uint8)
    if (out not in INT_RANGES and out not in QUANT_FLOATS) or out == np.int32:
        raise dtypes.UnsupportedDType(f"QuantizeLinear to {out} is not supported")
    if out in QUANT_FLOATS and out != ml_dtypes.float4_e2m1fn:
        node.inputs = node.inputs[:2]     # the reference never adds a float8 zero point
    precision = attr(node, "precision", 0)
    if precision and dtypes.to_numpy(precision) != node.inputs[1].dtype:
        raise ShapeError("QuantizeLinear: a precision other than the scale's dtype is not supported")
    node.attrs.pop("precision", None)
    _common_normalize(node, out)


def _dequantize_normalize(node, opset):
    given = attr(node, "output_dtype", 0)
    if dtypes.is_small_float(node.inputs[0].dtype):
        node.inputs = node.inputs[:2]     # the reference ignores a float zero point
    _common_normalize(node, dtypes.to_numpy(given) if given else node.inputs[1].dtype)


def _check_params(node):
    """Scale and zero point must be per-tensor, per-axis or blocked along `axis`."""
    x, a, block = node.inputs[0], attr(node, "axis"), attr(node, "block_size")
    for v in node.inputs[1:3]:
        if v is None or v.size == 1 or broadcastable_params(node):
            continue
        if block:
            want = tuple(-(-d // block) if i == a else d for i, d in enumerate(x.shape))
            if v.shape != want:
                raise ShapeError(f"{node.op}: blocked parameter shape {v.shape}, expected {want}")
        elif v.shape != (x.shape[a],):
            raise ShapeError(f"{node.op}: per-axis parameter shape {v.shape} does not fit axis {a}")


def broadcastable_params(node) -> bool:
    """True when scale and zero point broadcast numpy-style onto x with the op's meaning
    (per-tensor, or the same rank with every dim 1 or x's): the fusable form."""
    x = node.inputs[0]
    for v in node.inputs[1:3]:
        if v is None or v.size == 1:
            continue
        if len(v.shape) != len(x.shape) or any(s not in (1, d) for s, d in zip(v.shape, x.shape)):
            return False
    return True


def _qdq(node):
    _check_params(node)
    return [(dtypes.to_numpy(attr(node, "output_dtype")), node.inputs[0].shape)]


register("QuantizeLinear", BROADCAST, _qdq, normalize=_quantize_normalize)
register("DequantizeLinear", BROADCAST, _qdq, normalize=_dequantize_normalize)


def _dynamic_quantize(node):
    x = node.inputs[0]
    if x.dtype != np.float32:
        raise ShapeError("DynamicQuantizeLinear takes float32")
    return [(np.dtype(np.uint8), x.shape), (np.dtype(np.float32), ()), (np.dtype(np.uint8), ())]


register("DynamicQuantizeLinear", OPAQUE, _dynamic_quantize)


def _int8_operands(node, *slots):
    for s in slots:
        if node.inputs[s].dtype not in (np.uint8, np.int8):
            raise ShapeError(f"{node.op}: input {s} must be int8 or uint8")


def _matmul_integer(node):
    _int8_operands(node, 0, 1)
    return [(np.dtype(np.int32), matmul_shape(node.inputs[0].shape, node.inputs[1].shape))]


def _qlinear_matmul(node):
    _int8_operands(node, 0, 3, 7)
    return [(node.inputs[7].dtype, matmul_shape(node.inputs[0].shape, node.inputs[3].shape))]


def conv_view(node) -> Node:
    """ConvInteger / QLinearConv as a Conv node over (x, w) for the shared geometry."""
    w = node.inputs[3] if node.op == "QLinearConv" else node.inputs[1]
    return Node("Conv", [node.inputs[0], w], [], node.attrs, node.name)


def _conv_shape(node):
    view = conv_view(node)
    x, w = view.inputs
    if x.shape[1] != w.shape[1] * attr(node, "group", 1):
        raise ShapeError(f"{node.op}: channels do not match the weights and group")
    return (x.shape[0], w.shape[0]) + tuple(conv_geometry(view)["out"])


def _conv_integer(node):
    _int8_operands(node, 0, 1)
    return [(np.dtype(np.int32), _conv_shape(node))]


def _qlinear_conv(node):
    _int8_operands(node, 0, 3, 7)
    return [(node.inputs[7].dtype, _conv_shape(node))]


register("MatMulInteger", OUT_FUSABLE, _matmul_integer)
register("ConvInteger", OUT_FUSABLE, _conv_integer)
register("QLinearMatMul", OPAQUE, _qlinear_matmul)
register("QLinearConv", OPAQUE, _qlinear_conv)
