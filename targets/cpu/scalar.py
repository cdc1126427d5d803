"""Scalar semantics of elementwise ops on the CPU: a table from op to the
expression it renders, given the names of its scalar operands.

The fused-kernel generator casts every result to the op's output dtype, so
each entry only has to get the value right (ONNX's integer Div truncates,
Mod follows the divisor's sign unless fmod=1, and so on)."""
from __future__ import annotations

import numpy as np

from compiler.ops.quant import INT_RANGES, broadcastable_params

from .source import num, typed


def _f(node, key, default):
    return num(float(node.attrs.get(key, default)))


def _f32(dt) -> bool:
    return np.dtype(dt) == np.float32


def _erf(n, a, d):
    """float32 through the vectorisable rational erf (L_scalar.erf32), others through libm."""
    return f"L_scalar.erf32({a[0]})" if _f32(d[0]) else f"math.erf({a[0]})"


def _tanh(n, a, d):
    return f"L_scalar.tanh32({a[0]})" if _f32(d[0]) else f"np.tanh({a[0]})"


def _isfloat(dt) -> bool:
    return np.dtype(dt).kind == "f"


def _div(n, a, d):
    return f"{a[0]} / {a[1]}" if _isfloat(d[0]) else f"L_scalar.tdiv({a[0]}, {a[1]})"


def _pow(n, a, d):
    if _isfloat(n.outputs[0].dtype) or _isfloat(d[1]):
        return f"np.power(np.float64({a[0]}), np.float64({a[1]}))"
    return f"L_scalar.ipow({a[0]}, {a[1]})"


def _mod(n, a, d):
    if n.attrs.get("fmod", 0):
        return f"np.fmod({a[0]}, {a[1]})" if _isfloat(d[0]) else f"L_scalar.ifmod({a[0]}, {a[1]})"
    return f"np.mod({a[0]}, {a[1]})" if _isfloat(d[0]) else f"L_scalar.imod({a[0]}, {a[1]})"


def _variadic(fn):
    def render(n, a, d):
        expr = a[0]
        for x in a[1:]:
            expr = fn(expr, x, d[0])
        return expr
    return render


def _max(x, y, dt):
    return f"np.maximum({x}, {y})" if _isfloat(dt) else f"max({x}, {y})"


def _min(x, y, dt):
    return f"np.minimum({x}, {y})" if _isfloat(dt) else f"min({x}, {y})"


def _mean(n, a, d):
    return f"({' + '.join(a)}) / {len(a)}"


def _clip(n, a, d):
    expr = a[0]
    if n.input(1) is not None:
        expr = f"({a[1]} if {expr} < {a[1]} else {expr})"
    if n.input(2) is not None:
        hi = a[2] if n.input(1) is not None else a[1]
        expr = f"({hi} if {expr} > {hi} else {expr})"
    return expr


def _cast(n, a, d):
    if n.outputs[0].dtype == np.bool_:
        return f"{a[0]} != 0"
    return a[0]


def _gelu(n, a, d):
    x = a[0]
    f = "np.float32" if _f32(d[0]) else ""
    if n.attrs.get("approximate", "none") == "tanh":
        inner = f"{f}(0.7978845608028654) * ({x} + {f}(0.044715) * {x} * {x} * {x})"
        return f"{f}(0.5) * {x} * ({f}(1.0) + {_tanh(n, [inner], d)})"
    if _f32(d[0]):
        return f"np.float32(0.5) * {x} * (np.float32(1.0) + L_scalar.erf32({x} * np.float32(0.7071067811865476)))"
    return f"0.5 * {x} * (1.0 + math.erf({x} * 0.7071067811865476))"


def _isinf(n, a, d):
    neg, pos = n.attrs.get("detect_negative", 1), n.attrs.get("detect_positive", 1)
    terms = ([f"{a[0]} == np.inf"] if pos else []) + ([f"{a[0]} == -np.inf"] if neg else [])
    return " or ".join(terms) or "False"


def _shrink(n, a, d):
    x, b, lam = a[0], _f(n, "bias", 0.0), _f(n, "lambd", 0.5)
    return f"({x} + {b} if {x} < -{lam} else ({x} - {b} if {x} > {lam} else 0))"


def _bitshift(n, a, d):
    """A shift by a negative amount or by the bit width or more gives 0 (a right
    shift of a negative signed value: -1), as onnx.reference does."""
    bits = np.dtype(d[0]).itemsize * 8
    inside = f"0 <= {a[1]} < {bits}"
    if n.attrs.get("direction") == "LEFT":
        return f"({a[0]} << {a[1]} if {inside} else {typed(0, d[0])})"
    fill = f"({typed(-1, d[0])} if {a[0]} < 0 else {typed(0, d[0])})" if np.dtype(d[0]).kind == "i" else typed(0, d[0])
    return f"({a[0]} >> {a[1]} if {inside} else {fill})"


def _quantize(n, a, d):
    """saturate(rint(x / scale) + zero_point), the division in the scale's
    dtype; to a float type x / scale (+ float4's zero point), which the store rounds."""
    out = n.outputs[0].dtype
    if out not in INT_RANGES:
        return f"{a[0]} / {a[1]}" + (f" + {a[2]}" if n.input(2) is not None else "")
    lo, hi = INT_RANGES[out]
    zp = f" + np.float64({a[2]})" if n.input(2) is not None else ""
    return f"min(max(np.rint({a[0]} / {a[1]}){zp}, {num(float(lo))}), {num(float(hi))})"


def _dequantize(n, a, d):
    """(x - zero_point) * scale, the difference exact in float64 (x is at most 32 bits)."""
    zp = f" - np.float64({a[2]})" if n.input(2) is not None else ""
    return f"(np.float64({a[0]}){zp}) * np.float64({a[1]})"


UNARY = {
    "Abs": "abs({0})", "Neg": "-{0}", "Exp": "np.exp({0})", "Log": "np.log({0})",
    "Sqrt": "np.sqrt({0})", "Reciprocal": "1.0 / {0}", "Sin": "np.sin({0})", "Cos": "np.cos({0})",
    "Tan": "np.tan({0})", "Asin": "np.arcsin({0})", "Acos": "np.arccos({0})", "Atan": "np.arctan({0})",
    "Sinh": "np.sinh({0})", "Cosh": "np.cosh({0})", "Asinh": "np.arcsinh({0})",
    "Acosh": "np.arccosh({0})", "Atanh": "np.arctanh({0})",
    "Floor": "np.floor({0})", "Ceil": "np.ceil({0})", "Round": "np.rint({0})", "Sign": "np.sign({0})",
    "Sigmoid": "1.0 / (1.0 + np.exp(-np.float64({0})))", "Relu": "np.maximum({0}, 0)",
    "Softsign": "{0} / (1.0 + abs({0}))", "Softplus": "np.log(np.exp(np.float64({0})) + 1.0)",
    "Mish": "{0} * np.tanh(np.log1p(np.exp(np.float64({0}))))",
    "HardSwish": "{0} * max(0.0, min(1.0, {0} / 6.0 + 0.5))",
    "Identity": "{0}", "Dropout": "{0}", "Not": "not {0}", "BitwiseNot": "~{0}",
    "IsNaN": "np.isnan({0})",
}

ATTR_UNARY = {   # op -> (template, {attr: default})
    "LeakyRelu": ("{0} if {0} >= 0 else {0} * {alpha}", {"alpha": 0.01}),
    "Elu": ("{0} if {0} >= 0 else {alpha} * (np.exp(np.float64({0})) - 1.0)", {"alpha": 1.0}),
    "Selu": ("{gamma} * ({0} if {0} > 0 else {alpha} * (np.exp(np.float64({0})) - 1.0))",
             {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "Celu": ("max(0.0, {0}) + min(0.0, {alpha} * (np.exp({0} / {alpha}) - 1.0))", {"alpha": 1.0}),
    "HardSigmoid": ("max(0.0, min(1.0, {alpha} * {0} + {beta}))", {"alpha": 0.2, "beta": 0.5}),
    "ThresholdedRelu": ("{0} if {0} > {alpha} else 0", {"alpha": 1.0}),
    "Swish": ("{0} / (1.0 + np.exp(-{alpha} * np.float64({0})))", {"alpha": 1.0}),
}

BINARY = {
    "Add": "{0} + {1}", "Sub": "{0} - {1}", "Mul": "{0} * {1}", "BitwiseAnd": "{0} & {1}",
    "BitwiseOr": "{0} | {1}", "BitwiseXor": "{0} ^ {1}", "And": "{0} & {1}", "Or": "{0} | {1}",
    "Xor": "{0} ^ {1}", "PRelu": "{0} if {0} >= 0 else {0} * {1}", "Equal": "{0} == {1}",
    "Less": "{0} < {1}", "LessOrEqual": "{0} <= {1}", "Greater": "{0} > {1}",
    "GreaterOrEqual": "{0} >= {1}", "Where": "{1} if {0} else {2}",
}

RENDER = {
    "Div": _div, "Pow": _pow, "Mod": _mod, "Max": _variadic(_max), "Min": _variadic(_min),
    "Sum": _variadic(lambda x, y, dt: f"{x} + {y}"), "Mean": _mean, "Clip": _clip,
    "Cast": _cast, "CastLike": _cast, "Gelu": _gelu, "Erf": _erf, "Tanh": _tanh, "IsInf": _isinf, "Shrink": _shrink,
    "BitShift": _bitshift, "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize,
}
# Ops that render as scalars only in some forms (per-axis parameters must broadcast numpy-style).
RENDERABLE_WHEN = {"QuantizeLinear": broadcastable_params, "DequantizeLinear": broadcastable_params,
                   "Dropout": lambda n: n.input(2) is None or (n.input(2).is_const and not n.input(2).const)}
# (a Dropout that may train goes to its lowering, which checks the mode)
for _op, _t in {**UNARY, **BINARY}.items():
    RENDER[_op] = (lambda t: lambda n, a, d: t.format(*a))(_t)
for _op, (_t, _defaults) in ATTR_UNARY.items():
    RENDER[_op] = (lambda t, df: lambda n, a, d: t.format(*a, **{k: _f(n, k, v) for k, v in df.items()}))(_t, _defaults)


def render(node, args, dts) -> str:
    return RENDER[node.op](node, args, dts)


def supports(node) -> bool:
    return node.op in RENDER and RENDERABLE_WHEN.get(node.op, lambda n: True)(node)
