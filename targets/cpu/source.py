"""Safe pieces of generated source: dtype names and number literals.

Nothing from a model reaches generated text except through these checks:
dtypes come from a fixed table, numbers are re-made as Python int/float."""
from __future__ import annotations

import math

import numpy as np

from compiler.dtypes import HELD_AS_BITS

DTYPE_NAMES = {np.dtype(t): f"np.{np.dtype(t).name}" for t in (
    np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.uint32, np.uint64)}
DTYPE_NAMES[np.dtype(np.bool_)] = "np.bool_"
for _t, _bits in HELD_AS_BITS.items():    # held as their bit patterns (targets/cpu/half.py)
    DTYPE_NAMES[_t] = DTYPE_NAMES[_bits]


def dtype_name(dtype) -> str:
    return DTYPE_NAMES[np.dtype(dtype)]


def num(x) -> str:
    """A checked numeric literal."""
    if isinstance(x, (bool, np.bool_)):
        return "True" if x else "False"
    if isinstance(x, (int, np.integer)):
        return repr(int(x))
    f = float(x)
    if math.isnan(f):
        return "np.nan"
    if math.isinf(f):
        return "np.inf" if f > 0 else "-np.inf"
    return repr(f)


def ints(xs) -> str:
    """A tuple literal of checked ints."""
    xs = [repr(int(x)) for x in xs]
    return "(" + ", ".join(xs) + ("," if len(xs) == 1 else "") + ")"


def typed(x, dtype) -> str:
    """A literal of `dtype`, so Numba does not widen float32 math to float64."""
    return f"{dtype_name(dtype)}({num(x)})"
