"""Scalar helpers that generated kernels call (inlined by Numba)."""
import numpy as np

from .fastmath import erf32, tanh32  # noqa: F401 (generated code calls L_scalar.erf32, .tanh32)
from .jit import njit


@njit(inline="always")
def tdiv(a, b):
    """Integer division truncating toward zero, as ONNX Div does (numpy floors)."""
    if b == 0:
        return a * 0
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@njit(inline="always")
def imod(a, b):
    """Integer Mod with the divisor's sign (Python/numpy semantics); 0 on b == 0."""
    if b == 0:
        return a * 0
    return a % b


@njit(inline="always")
def ifmod(a, b):
    """Integer fmod: the dividend's sign, as C's %."""
    if b == 0:
        return a * 0
    r = a % b
    if r != 0 and (r < 0) != (a < 0):
        r -= b
    return r


@njit(inline="always")
def ipow(a, b):
    """Integer power by squaring; negative exponents as numpy's float path would truncate."""
    if b < 0:
        return a * 0 + (1 if a == 1 else (1 if (a == -1 and b % 2 == 0) else (-1 if a == -1 else 0)))
    r = a * 0 + 1
    while b > 0:
        if b & 1:
            r = r * a
        a = a * a
        b >>= 1
    return r


