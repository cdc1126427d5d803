"""Neural-network ops: convolution, pooling, normalisation, matrix products."""
from __future__ import annotations

import numpy as np

from .. import spatial
from ..registry import BROADCAST, OPAQUE, OUT_FUSABLE, REDUCTION, register
from .common import ShapeError, attr, axis, broadcast


def _spatial_attrs(node, nsp, kernel):
    strides = tuple(attr(node, "strides", [1] * nsp))
    dil = tuple(attr(node, "dilations", [1] * nsp))
    pads = attr(node, "pads")
    return strides, dil, (tuple(pads) if pads is not None else None), attr(node, "auto_pad", "NOTSET")


def conv_geometry(node):
    x, w = node.inputs[0], node.inputs[1]
    nsp = len(x.shape) - 2
    kernel = tuple(attr(node, "kernel_shape", w.shape[2:]))
    strides, dil, pads, auto = _spatial_attrs(node, nsp, kernel)
    pb, pe, osz = spatial.conv_geometry(x.shape[2:], kernel, strides, dil, pads, auto)
    return dict(kernel=kernel, strides=strides, dilations=dil, pads_begin=pb, pads_end=pe, out=osz)


def _conv(node):
    x, w = node.inputs[0], node.inputs[1]
    g = attr(node, "group", 1)
    if x.shape[1] != w.shape[1] * g:
        raise ShapeError("Conv: channels do not match the weights and group")
    geo = conv_geometry(node)
    return [(x.dtype, (x.shape[0], w.shape[0]) + tuple(geo["out"]))]


register("Conv", OUT_FUSABLE, _conv)


def conv_transpose_geometry(node):
    x, w = node.inputs[0], node.inputs[1]
    nsp = len(x.shape) - 2
    kernel = tuple(attr(node, "kernel_shape", w.shape[2:]))
    strides, dil, pads, auto = _spatial_attrs(node, nsp, kernel)
    pb, pe, osz = spatial.conv_transpose_geometry(
        x.shape[2:], kernel, strides, dil, pads, auto,
        tuple(attr(node, "output_padding", [0] * nsp)), attr(node, "output_shape"))
    return dict(kernel=kernel, strides=strides, dilations=dil, pads_begin=pb, pads_end=pe, out=osz)


def _conv_transpose(node):
    x, w = node.inputs[0], node.inputs[1]
    g = attr(node, "group", 1)
    return [(x.dtype, (x.shape[0], w.shape[1] * g) + tuple(conv_transpose_geometry(node)["out"]))]


register("ConvTranspose", OUT_FUSABLE, _conv_transpose)


def pool_geometry(node):
    x = node.inputs[0]
    nsp = len(x.shape) - 2
    kernel = tuple(attr(node, "kernel_shape"))
    strides, dil, pads, auto = _spatial_attrs(node, nsp, kernel)
    pb, pe, osz = spatial.pool_geometry(x.shape[2:], kernel, strides, dil, pads, auto, attr(node, "ceil_mode", 0))
    return dict(kernel=kernel, strides=strides, dilations=dil, pads_begin=pb, pads_end=pe, out=osz)


def _pool(node):
    x = node.inputs[0]
    shape = x.shape[:2] + tuple(pool_geometry(node)["out"])
    out = [(x.dtype, shape)]
    if len(node.outputs) > 1:
        out.append((np.dtype(np.int64), shape))
    return out


for _op in ("MaxPool", "AveragePool", "LpPool"):
    register(_op, OPAQUE, _pool)
for _op in ("GlobalAveragePool", "GlobalMaxPool"):
    register(_op, REDUCTION, lambda n: [(n.inputs[0].dtype, n.inputs[0].shape[:2] + (1,) * (len(n.inputs[0].shape) - 2))])

_same = lambda n: [(n.inputs[0].dtype, n.inputs[0].shape)]   # noqa: E731
register("LRN", OPAQUE, _same)
register("InstanceNormalization", REDUCTION, _same)


def _batchnorm_normalize(node, opset):
    for k in ("spatial", "is_test", "consumed_inputs"):
        node.attrs.pop(k, None)


def _batchnorm(node):
    x = node.inputs[0]
    if not attr(node, "training_mode", 0) and len(node.outputs) > 1:
        raise ShapeError("BatchNormalization: running mean/var outputs need training_mode=1")
    stat = (x.dtype, x.shape[1:2])
    return [(x.dtype, x.shape), stat, stat][:len(node.outputs)]


register("BatchNormalization", BROADCAST, _batchnorm, normalize=_batchnorm_normalize, max_outputs=3)


def _layernorm(node):
    x = node.inputs[0]
    a = axis(attr(node, "axis", -1), len(x.shape))
    stat = tuple(d if i < a else 1 for i, d in enumerate(x.shape))
    sd = np.dtype(np.float32) if attr(node, "stash_type", 1) == 1 else x.dtype
    return [(x.dtype, x.shape), (sd, stat), (sd, stat)][:len(node.outputs)]


register("LayerNormalization", REDUCTION, _layernorm)


def matmul_shape(a, b):
    if not a or not b:
        raise ShapeError("MatMul: scalar operand")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeError(f"MatMul: inner dims differ {a} x {b}")
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


register("MatMul", OUT_FUSABLE, lambda n: [(n.inputs[0].dtype, matmul_shape(n.inputs[0].shape, n.inputs[1].shape))])


def _gemm(node):
    a, b = node.inputs[0].shape, node.inputs[1].shape
    m, k = (a[1], a[0]) if attr(node, "transA", 0) else a
    k2, n = (b[1], b[0]) if attr(node, "transB", 0) else b
    if k != k2:
        raise ShapeError("Gemm: inner dims differ")
    return [(node.inputs[0].dtype, (m, n))]


def _gemm_normalize(node, opset):
    node.attrs.pop("broadcast", None)


register("Gemm", OUT_FUSABLE, _gemm, normalize=_gemm_normalize)


def _det(node):
    s = node.inputs[0].shape
    if len(s) < 2 or s[-1] != s[-2]:
        raise ShapeError(f"Det: needs square matrices in the last two dims, got {s}")
    return [(node.inputs[0].dtype, s[:-2])]


register("Det", OPAQUE, _det)
