"""Resize (10..19) and Upsample (7, 9). Older forms are normalised to Resize-19's
input layout (X, roi, scales, sizes) with a `_legacy` flag for their coordinates."""
from __future__ import annotations

import numpy as np

from targets.cpu.kernels import resize as plan   # pure-Python shape arithmetic lives with the kernel

from ..registry import OPAQUE, register
from .common import ShapeError, attr, const_of


def _absent_or(v):
    return None if v is None or v.size == 0 else v


def resize_geometry(node):
    x = node.inputs[0]
    scales, sizes = _absent_or(const_of(node, 2)), _absent_or(const_of(node, 3))
    try:
        out, axis_scales = plan.resize_plan(
            x.shape, None if scales is None else scales.tolist(), None if sizes is None else sizes.tolist(),
            None, attr(node, "axes"), attr(node, "keep_aspect_ratio_policy", "stretch"))
    except ValueError as e:
        raise ShapeError(str(e)) from None
    return out, axis_scales


def _normalize(node, opset):
    if node.op == "Upsample" or opset < 11:
        node.attrs["_legacy"] = True
        if "scales" in node.attrs:                    # Upsample-7: scales attribute
            scales = np.asarray(node.attrs.pop("scales"), np.float32)
            from ..ir import Value
            node.inputs.append(Value(f"{node.name}/scales", scales.dtype, scales.shape, scales))
        node.inputs = [node.inputs[0], None, node.inputs[1], None]


def _resize(node):
    return [(node.inputs[0].dtype, resize_geometry(node)[0])]


register("Resize", OPAQUE, _resize, value_inputs=(1, 2, 3), normalize=_normalize)
register("Upsample", OPAQUE, _resize, value_inputs=(1,), normalize=_normalize)
