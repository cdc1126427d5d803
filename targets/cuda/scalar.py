"""Scalar semantics on CUDA: the CPU table, rendered in the CUDA dialect.

One table (targets/cpu/scalar.py) says what every elementwise op computes.
Its expressions call numpy functions and Python's min/max, which do not
compile in CUDA kernels; each such call is renamed to the device function of
the same meaning in targets/cuda/kernels/scalar.py."""
from __future__ import annotations

import re

from targets.cpu import scalar as cpu_scalar

from .kernels import scalar as lib

_NUMPY_CALL = re.compile(r"\bnp\.(" + "|".join(lib.NUMPY_NAMES) + r")\(")
_BUILTIN_MINMAX = re.compile(r"(?<![.\w])(max|min)\(")


def render(node, args, dts) -> str:
    expr = cpu_scalar.render(node, args, dts)
    expr = _NUMPY_CALL.sub(r"L_scalar.\1(", expr)
    return _BUILTIN_MINMAX.sub(r"L_scalar.py\1(", expr)


supports = cpu_scalar.supports
