"""CPU lowerings of the vision ops onto targets/cpu/kernels/vision.py
(conventions in its docstring), and MaxPool on int8/uint8."""
from __future__ import annotations

import numpy as np

from compiler.ir import Node, Value
from compiler.ops import vision as vision_ops
from compiler.ops.common import attr, const_of, ints

from . import source
from .lower import LOWER, lower


def _prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64))


def _vec(em, xs) -> str:
    return em.const(np.asarray(xs, np.int64))


def _view(name, shape) -> str:
    return f"{name}.reshape({source.ints(shape)})"


@lower("GridSample")
def _grid_sample(node, em):
    x, g, out = node.inputs[0], node.inputs[1], node.outputs[0]
    mode, pad, align = vision_ops.grid_sample_codes(node)
    n, c, r = x.shape[0], x.shape[1], len(x.shape) - 2
    p = _prod(g.shape[1:-1])
    L = em.lib("vision")
    res = em.alloc(out)
    em.emit(f"{L}.grid_sample({_view(em[x], (n, c, _prod(x.shape[2:])))}, {_vec(em, x.shape[2:])}, "
            f"{_view(em[g], (n, p, r))}, {_view(res, (n, c, p))}, {mode}, {pad}, {align})")


@lower("AffineGrid")
def _affine_grid(node, em):
    theta, out = node.inputs[0], node.outputs[0]
    dims = ints(const_of(node, 1))[2:]
    L = em.lib("vision")
    res = em.alloc(out)
    em.emit(f"{L}.affine_grid({em[theta]}, {_vec(em, dims)}, {_view(res, (out.shape[0], _prod(dims), len(dims)))}, "
            f"{int(attr(node, 'align_corners', 0))})")


@lower("Col2Im")
def _col2im(node, em):
    x, out = node.inputs[0], node.outputs[0]
    img, block, ncol, strides, pads, dil = vision_ops.col2im_geometry(node)
    n, c = out.shape[:2]
    L = em.lib("vision")
    res = em.alloc(out)
    em.emit(f"{L}.col2im({_view(em[x], (n, c, _prod(block), _prod(ncol)))}, "
            f"{', '.join(_vec(em, v) for v in (img, block, ncol, strides, pads, dil))}, "
            f"{_view(res, (n, c, _prod(img)))})")


@lower("DeformConv")
def _deform_conv(node, em):
    x, w, off, out = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    b, mask = node.input(3), node.input(4)
    n, og = x.shape[0], attr(node, "offset_group", 1)
    kh, kw = w.shape[2:]
    oh, ow = out.shape[2:]
    L = em.lib("vision")
    bias = em[b] if b is not None else em.const(np.zeros(w.shape[0], x.dtype))
    m = _view(em[mask], (n, og, kh, kw, oh, ow)) if mask is not None else em.const(np.ones((n, og, kh, kw, oh, ow), x.dtype))
    pads = attr(node, "pads", [0] * 4)
    res = em.alloc(out)
    em.emit(f"{L}.deform_conv({em[x]}, {em[w]}, {_view(em[off], (n, og, kh, kw, 2, oh, ow))}, {m}, {bias}, {res}, "
            f"{source.ints(attr(node, 'strides', [1, 1]))}, {source.ints(pads[:2])}, "
            f"{source.ints(attr(node, 'dilations', [1, 1]))}, {int(attr(node, 'group', 1))}, {int(og)})")


@lower("RoiAlign")
def _roi_align(node, em):
    x, rois, batch, out = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    half = attr(node, "coordinate_transformation_mode", "half_pixel") == "half_pixel"
    L = em.lib("vision")
    res = em.alloc(out)
    em.emit(f"{L}.roi_align({em[x]}, {em[rois]}, {em[batch]}, {res}, {source.num(float(attr(node, 'spatial_scale', 1.0)))}, "
            f"{int(attr(node, 'sampling_ratio', 0))}, {half}, {attr(node, 'mode', 'avg') == 'max'})")


@lower("MaxUnpool")
def _max_unpool(node, em):
    x, idx, out = node.inputs[0], node.inputs[1], node.outputs[0]
    full, shape = vision_ops.max_unpool_shapes(node)
    L = em.lib("vision")
    res = em.alloc(out)
    em.emit(f"{L}.max_unpool({em[x]}.reshape({x.size}), {em[idx]}.reshape({idx.size}), {_vec(em, full)}, "
            f"{_vec(em, shape)}, {res}.reshape({out.size}))")


_float_max_pool = LOWER["MaxPool"]


@lower("MaxPool")
def _max_pool(node, em):
    """int8/uint8 run the float kernel on float32 copies: exact, as float32 holds every such value."""
    x, out = node.inputs[0], node.outputs[0]
    if x.dtype.kind == "f":
        return _float_max_pool(node, em)
    xf, yf = (Value(v.name, np.dtype(np.float32), v.shape) for v in (x, out))
    _cast(em, em[x], em.alloc(xf), x.shape)
    _float_max_pool(Node(node.op, [xf], [yf] + node.outputs[1:], node.attrs, node.name, node.domain, node.version), em)
    _cast(em, em[yf], em.alloc(out), out.shape)


def _cast(em, src: str, dst: str, shape):
    """dst[...] = src[...] (dst's dtype) as a loop kernel."""
    k = em.loop_kernel("out, a", "out", 1, ["out[i0] = a[i0]"])
    em.launch(k, _prod(shape), [f"{dst}.reshape({_prod(shape)})", f"{src}.reshape({_prod(shape)})"])
