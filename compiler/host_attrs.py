"""A node's attributes as plain Python values: ints, floats, str (utf-8),
lists of those, and numpy arrays for tensors (string tensors as object arrays
of str). The frontend reads attributes this way, and so do the host-side ops
(runtime/host_strings.py), which must not import onnx themselves."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .ops.common import ShapeError


def _text(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def _tensor(t: onnx.TensorProto) -> np.ndarray:
    a = numpy_helper.to_array(t)
    if a.dtype.kind in "OSU":
        out = np.empty(a.shape, dtype=object)
        out.reshape(-1)[:] = [_text(s) if isinstance(s, bytes) else str(s) for s in a.reshape(-1).tolist()]
        return out
    return a


def attr_value(a: onnx.AttributeProto):
    """One attribute's value; graphs and sparse tensors are not supported."""
    v = helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        return _tensor(v)
    if isinstance(v, bytes):
        return _text(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [_text(x) for x in v]
    if isinstance(v, (onnx.GraphProto, onnx.SparseTensorProto)) or (
            isinstance(v, list) and v and not isinstance(v[0], (int, float, str))):
        raise ShapeError(f"attribute {a.name!r} of a kind we do not support")
    return v


def node_attrs(node: onnx.NodeProto) -> dict:
    return {a.name: attr_value(a) for a in node.attribute}
