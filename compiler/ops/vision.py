"""Vision ops: sampling grids (GridSample, AffineGrid), columns back to images
(Col2Im), deformable convolution, RoiAlign and MaxUnpool."""
from __future__ import annotations

import numpy as np

from ..registry import OPAQUE, register
from .common import ShapeError, attr, const_of, ints

GRID_MODES = {"nearest": 0, "linear": 1, "cubic": 2, "bilinear": 1, "bicubic": 2}   # opset 16 says bi-
GRID_PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}


def grid_sample_codes(node):
    """(mode, padding_mode, align_corners) as the kernel's ints."""
    mode, pad = attr(node, "mode", "linear"), attr(node, "padding_mode", "zeros")
    if mode not in GRID_MODES or pad not in GRID_PADDINGS:
        raise ShapeError(f"GridSample: unknown mode {mode!r} or padding_mode {pad!r}")
    return GRID_MODES[mode], GRID_PADDINGS[pad], int(attr(node, "align_corners", 0))


def _grid_sample(node):
    x, g = node.inputs[0].shape, node.inputs[1].shape
    if len(g) != len(x) or g[0] != x[0] or g[-1] != len(x) - 2:
        raise ShapeError(f"GridSample: grid {g} does not fit input {x}")
    grid_sample_codes(node)
    return [(node.inputs[0].dtype, tuple(x[:2]) + tuple(g[1:-1]))]


register("GridSample", OPAQUE, _grid_sample)


def _affine_grid(node):
    theta = node.inputs[0].shape
    size = ints(const_of(node, 1, "size"))
    r = len(size) - 2
    if r not in (2, 3) or theta != (size[0], r, r + 1):
        raise ShapeError(f"AffineGrid: theta {theta} does not fit size {size}")
    return [(node.inputs[0].dtype, (size[0],) + size[2:] + (r,))]


register("AffineGrid", OPAQUE, _affine_grid, value_inputs=(1,))


def col2im_geometry(node):
    """(image shape, block shape, number of blocks per dim, strides, pads begin, dilations)."""
    img, block = ints(const_of(node, 1, "image_shape")), ints(const_of(node, 2, "block_shape"))
    r = len(img)
    strides = tuple(attr(node, "strides", [1] * r))
    dil = tuple(attr(node, "dilations", [1] * r))
    pads = tuple(attr(node, "pads", [0] * 2 * r))
    ncol = tuple((img[d] + pads[d] + pads[r + d] - dil[d] * (block[d] - 1) - 1) // strides[d] + 1 for d in range(r))
    return img, block, ncol, strides, pads[:r], dil


def _col2im(node):
    x = node.inputs[0].shape
    img, block, ncol, *_ = col2im_geometry(node)
    k = int(np.prod(block, dtype=np.int64))
    if len(x) != 3 or x[1] % k or x[2] != int(np.prod(ncol, dtype=np.int64)):
        raise ShapeError(f"Col2Im: input {x} does not fit image {img} and block {block}")
    return [(node.inputs[0].dtype, (x[0], x[1] // k) + img)]


register("Col2Im", OPAQUE, _col2im, value_inputs=(1, 2))


def _deform_conv(node):
    x, w, off = node.inputs[0].shape, node.inputs[1].shape, node.inputs[2].shape
    g, og = attr(node, "group", 1), attr(node, "offset_group", 1)
    kernel = tuple(attr(node, "kernel_shape", w[2:]))
    if len(x) != 4:
        raise ShapeError("DeformConv: only 2-D images are supported")
    if x[1] != w[1] * g or w[0] % g or x[1] % og or off[1] != og * 2 * int(np.prod(kernel)):
        raise ShapeError(f"DeformConv: shapes X {x}, W {w}, offset {off} do not fit group {g}, offset_group {og}")
    return [(node.inputs[0].dtype, (x[0], w[0]) + tuple(off[2:]))]


register("DeformConv", OPAQUE, _deform_conv)


def _roi_align_normalize(node, opset):
    if opset < 16:     # RoiAlign-10 had no half-pixel mode
        node.attrs.setdefault("coordinate_transformation_mode", "output_half_pixel")


def _roi_align(node):
    x, rois = node.inputs[0].shape, node.inputs[1].shape
    if len(x) != 4 or rois[1:] != (4,):
        raise ShapeError(f"RoiAlign: X {x} and rois {rois} are not (N, C, H, W) and (R, 4)")
    return [(node.inputs[0].dtype, (rois[0], x[1], attr(node, "output_height", 1), attr(node, "output_width", 1)))]


register("RoiAlign", OPAQUE, _roi_align, normalize=_roi_align_normalize)


def max_unpool_shapes(node):
    """(the unpooled shape the indices address, the output shape)."""
    x = node.inputs[0].shape
    r = len(x) - 2
    kernel = attr(node, "kernel_shape")
    strides = attr(node, "strides", [1] * r)
    pads = attr(node, "pads", [0] * 2 * r)
    full = tuple(x[:2]) + tuple((x[2 + d] - 1) * strides[d] - pads[d] - pads[r + d] + kernel[d] for d in range(r))
    out = full if node.input(2) is None else ints(const_of(node, 2, "output_shape"))
    if len(out) != len(x):
        raise ShapeError(f"MaxUnpool: output_shape {out} has the wrong rank")
    return full, out


register("MaxUnpool", OPAQUE, lambda n: [(n.inputs[0].dtype, max_unpool_shapes(n)[1])], value_inputs=(2,))
