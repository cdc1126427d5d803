"""Elementwise and broadcasting ops: shape rule is numpy broadcasting.

Their scalar semantics live with each target (targets/cpu/scalar.py); host
folding covers integer shape arithmetic, and float math only on nodes whose
outputs decide a shape (`Node.shape_math`: a window size through float math
into Range).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..registry import BROADCAST, ELEMENTWISE, register
from .common import attr, attr_to_input, broadcast

UNARY = ["Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sin", "Cos", "Tan", "Asin",
         "Acos", "Atan", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh", "Atanh", "Erf", "Floor",
         "Ceil", "Round", "Sign", "Sigmoid", "Relu", "LeakyRelu", "Elu", "Selu", "Celu",
         "HardSigmoid", "HardSwish", "Softplus", "Softsign", "ThresholdedRelu", "Mish", "Gelu",
         "Shrink", "Identity", "Not", "BitwiseNot", "Swish"]
UNARY_TO_BOOL = ["IsNaN", "IsInf"]
BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
          "BitwiseXor", "PRelu", "And", "Or", "Xor"]
VARIADIC = ["Max", "Min", "Sum", "Mean"]
COMPARE = ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"]


def _same(node):
    shape = broadcast(*[v.shape for v in node.inputs if v is not None])
    return [(node.inputs[0].dtype, shape)]


def _to_bool(node):
    shape = broadcast(*[v.shape for v in node.inputs if v is not None])
    return [(np.dtype(np.bool_), shape)]


def _where(node):
    return [(node.inputs[1].dtype, broadcast(*[v.shape for v in node.inputs]))]


def _cast(node):
    return [(dtypes.to_numpy(attr(node, "to")), node.inputs[0].shape)]


def _castlike_normalize(node, opset):
    """CastLike(x, like) is Cast(x, to=like's dtype): the `like` tensor is never read."""
    node.attrs = {**node.attrs, "to": dtypes.from_numpy(node.inputs[1].dtype)}   # keeps `saturate`, `round_mode`
    node.op = "Cast"
    node.inputs = node.inputs[:1]


def _clip_normalize(node, opset):
    if opset < 11:
        attr_to_input(node, "min", 1, np.float32, None)
        attr_to_input(node, "max", 2, np.float32, None)
        for slot in (1, 2):   # the attribute form is float32; compute in the input's dtype
            v = node.input(slot)
            if v is not None:
                v.const = v.const.astype(node.inputs[0].dtype)
                v.dtype = v.const.dtype


def _dropout_normalize(node, opset):
    node.attrs.pop("is_test", None)
    if opset < 12:
        node.attrs.pop("ratio", None)


def _dropout(node):
    x = node.inputs[0]
    return [(x.dtype, x.shape), (np.dtype(np.bool_), x.shape)][:len(node.outputs)]


# Host folding of integer shape arithmetic (Shape -> Gather -> Div -> Concat chains).
def _trunc_div(a, b):
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0))).astype(q.dtype)


_INT_FOLD = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _trunc_div,
    "Neg": np.negative, "Abs": np.abs, "Equal": np.equal, "Less": np.less,
    "Greater": np.greater, "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
    "Max": np.maximum, "Min": np.minimum, "Not": np.logical_not, "And": np.logical_and,
    "Or": np.logical_or, "Identity": lambda a: a,
}


_FLOAT_FOLD = dict(_INT_FOLD, Div=np.true_divide, Floor=np.floor, Ceil=np.ceil, Round=np.round,
                   Sqrt=np.sqrt, Pow=np.power)


def _int_fold(node, arrays):
    floats = node.shape_math and all(a.dtype.kind in "iubf" for a in arrays)
    if not floats and not all(a.dtype.kind in "iub" for a in arrays):
        return None
    if node.op == "Where":
        return [np.where(*arrays)]
    if node.op == "Cast":
        to = dtypes.to_numpy(attr(node, "to"))
        return [arrays[0].astype(to)] if to.kind in "iub" or (floats and to.kind == "f") else None
    if node.op == "Mod" and not attr(node, "fmod", 0):
        return [np.mod(*arrays)]
    fn = (_FLOAT_FOLD if any(a.dtype.kind == "f" for a in arrays) else _INT_FOLD).get(node.op)
    if fn is None:
        return None
    out = arrays[0] if len(arrays) == 1 and node.op in VARIADIC else fn(*arrays) if node.op not in VARIADIC else _reduce(fn, arrays)
    return [np.asarray(out).astype(node.outputs[0].dtype)]


def _reduce(fn, arrays):
    out = arrays[0]
    for a in arrays[1:]:
        out = fn(out, a)
    return out


for _op in UNARY:
    register(_op, ELEMENTWISE, _same, fold=_int_fold)
for _op in UNARY_TO_BOOL:
    register(_op, ELEMENTWISE, _to_bool)
for _op in BINARY + VARIADIC:
    register(_op, BROADCAST, _same, fold=_int_fold)
for _op in COMPARE:
    register(_op, BROADCAST, _to_bool, fold=_int_fold)
register("Where", BROADCAST, _where, fold=_int_fold)
register("Clip", BROADCAST, lambda n: [(n.inputs[0].dtype, n.inputs[0].shape)], normalize=_clip_normalize)
register("Cast", ELEMENTWISE, _cast, fold=_int_fold)
register("CastLike", ELEMENTWISE, _cast, normalize=_castlike_normalize)
register("Dropout", ELEMENTWISE, _dropout, normalize=_dropout_normalize)
