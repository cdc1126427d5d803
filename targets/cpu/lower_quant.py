"""CPU lowerings of the quantized ops onto targets/cpu/kernels/quant.py.

(De)QuantizeLinear reach here only in the forms the fused elementwise kernels
cannot broadcast (per-axis parameters known at run time, blocked); the rest
render as scalar expressions (targets/cpu/scalar.py)."""
from __future__ import annotations

import numpy as np

from compiler import dtypes
from compiler.ops import nn as nn_ops
from compiler.ops.common import attr
from compiler.ops.quant import INT_RANGES, conv_view

from . import source
from .lower import lower, matmul_operands
from .lower_nn import _as5, _p3, _view5


def _three(shape, a):
    """(outer, shape[a], inner) around axis a."""
    return (int(np.prod(shape[:a], dtype=np.int64)), int(shape[a]), int(np.prod(shape[a + 1:], dtype=np.int64)))


def _param(em, v, x, a, fill_dtype):
    """A scale or zero point as (outer or 1, S, inner or 1); absent -> a zero."""
    if v is None:
        return em.const(np.zeros((1, 1, 1), fill_dtype))
    if v.size == 1:
        shape = (1, 1, 1)
    elif len(v.shape) == len(x.shape):
        shape = _three(v.shape, a)
    else:
        shape = (1, v.size, 1)
    return f"{em[v]}.reshape({source.ints(shape)})"


@lower("QuantizeLinear", "DequantizeLinear")
def _qdq(node, em):
    x, out = node.inputs[0], node.outputs[0]
    a = attr(node, "axis") if x.shape else 0
    shape = _three(x.shape, a) if x.shape else (1, 1, 1)
    view = source.ints(shape)
    block = max(int(attr(node, "block_size")), 1)
    scale = _param(em, node.inputs[1], x, a, np.float32)
    L = em.lib("quant")
    res = em.alloc(out)
    if node.op == "QuantizeLinear":   # a small-float or small-int `out` is float32 here (half.py)
        lo, hi = INT_RANGES.get(dtypes.to_numpy(attr(node, "output_dtype")), (-np.inf, np.inf))
        zero = _param(em, node.input(2), x, a, out.dtype)
        if node.input(2) is None and not np.isfinite(lo):   # to a float: x + (-0.0) is x, -0 included
            zero = em.const(np.full((1, 1, 1), -0.0, np.float32))
        em.emit(f"{L}.quantize({em[x]}.reshape({view}), {scale}, {zero}, {res}.reshape({view}), {block}, "
                f"{source.num(float(lo))}, {source.num(float(hi))}, {source.num(bool(np.isfinite(lo)))})")
    else:
        zero = _param(em, node.input(2), x, a, x.dtype)
        em.emit(f"{L}.dequantize({em[x]}.reshape({view}), {scale}, {zero}, {res}.reshape({view}), {block})")


@lower("DynamicQuantizeLinear")
def _dynamic_quantize(node, em):
    x = node.inputs[0]
    L = em.lib("quant")
    outs = [em.alloc(v) for v in node.outputs]
    em.emit(f"{L}.dynamic_quantize({em[x]}.reshape({x.size}), {outs[0]}.reshape({x.size}), "
            f"{outs[1]}.reshape(1), {outs[2]}.reshape(1))")


def _vector(em, v, sizes, what, absent=None):
    """A scale, zero point or bias as a flat vector of 1 or `sizes` entries (absent: one 0)."""
    if v is None:
        return em.const(np.zeros(1, absent))
    if v.size != 1 and v.size not in sizes:
        raise NotImplementedError(f"{what} of shape {v.shape}")
    return f"{em[v]}.reshape({v.size})"


def _rows_cols(a, b):
    """(m, n) of a MatMul: a's per-row and b's per-column zero points have these sizes."""
    m = a.shape[-2] if len(a.shape) > 1 else 1
    n = b.shape[-1] if len(b.shape) > 1 else 1
    return m, n


@lower("MatMulInteger")
def _matmul_integer(node, em):
    a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
    m, n = _rows_cols(a, b)
    az = _vector(em, node.input(2), (m,), "a_zero_point", a.dtype)
    bz = _vector(em, node.input(3), (n,), "b_zero_point", b.dtype)
    L = em.lib("quant")
    res = em.alloc(out)
    a3, b3, o3, ai, bi = matmul_operands(em, a, b, res)
    em.emit(f"{L}.matmul_integer({a3}, {b3}, {az}, {bz}, {o3}, {ai}, {bi})")


@lower("QLinearMatMul")
def _qlinear_matmul(node, em):
    a, a_s, a_z, b, b_s, b_z, y_s, y_z = node.inputs[:8]
    out = node.outputs[0]
    m, n = _rows_cols(a, b)
    lo, hi = INT_RANGES[out.dtype]
    L = em.lib("quant")
    res = em.alloc(out)
    a3, b3, o3, ai, bi = matmul_operands(em, a, b, res)
    em.emit(f"{L}.qlinear_matmul({a3}, {_vector(em, a_s, (), 'a_scale')}, {_vector(em, a_z, (m,), 'a_zero_point', a.dtype)}, "
            f"{b3}, {_vector(em, b_s, (n,), 'b_scale')}, {_vector(em, b_z, (n,), 'b_zero_point', b.dtype)}, "
            f"{_vector(em, y_s, (), 'y_scale')}, {_vector(em, y_z, (), 'y_zero_point')}, {o3}, {ai}, {bi}, "
            f"{source.num(float(lo))}, {source.num(float(hi))})")


def _conv_args(node):
    geo = nn_ops.conv_geometry(conv_view(node))
    return (f"{_p3(geo['strides'], 1)}, {_p3(geo['pads_begin'], 0)}, {_p3(geo['dilations'], 1)}, "
            f"{int(attr(node, 'group', 1))}")


@lower("ConvInteger")
def _conv_integer(node, em):
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    xz = _vector(em, node.input(2), (), "x_zero_point", x.dtype)
    wz = _vector(em, node.input(3), (w.shape[0],), "w_zero_point", w.dtype)
    L = em.lib("quant")
    res = em.alloc(out)
    em.emit(f"{L}.conv_integer({_view5(em, x)}, {_view5(em, w)}, {xz}, {wz}, "
            f"{res}.reshape({source.ints(_as5(out.shape))}), {_conv_args(node)})")


@lower("QLinearConv")
def _qlinear_conv(node, em):
    x, x_s, x_z, w, w_s, w_z, y_s, y_z = node.inputs[:8]
    out = node.outputs[0]
    m = w.shape[0]
    bias = _vector(em, node.input(8), (m,), "B", np.int32)
    lo, hi = INT_RANGES[out.dtype]
    L = em.lib("quant")
    res = em.alloc(out)
    em.emit(f"{L}.qlinear_conv({_view5(em, x)}, {_vector(em, x_s, (), 'x_scale')}, "
            f"{_vector(em, x_z, (), 'x_zero_point', x.dtype)}, {_view5(em, w)}, {_vector(em, w_s, (m,), 'w_scale')}, "
            f"{_vector(em, w_z, (m,), 'w_zero_point', w.dtype)}, {_vector(em, y_s, (), 'y_scale')}, "
            f"{_vector(em, y_z, (), 'y_zero_point')}, {bias}, {res}.reshape({source.ints(_as5(out.shape))}), "
            f"{_conv_args(node)}, {source.num(float(lo))}, {source.num(float(hi))})")
