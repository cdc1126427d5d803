"""Scalar helpers that generated kernels call (inlined by Numba)."""
import numpy as np
from numba import njit


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


# float32 erf and tanh as rational polynomials (Eigen's generic_fast_erf/tanh_float):
# a few ulp from the exact value, and they vectorise, where libm's erff/tanhf are
# scalar calls (Gelu's erf was 20 ns an element, tanh 140 ns; these about 1).
@njit(inline="always")
def erf32(x):
    x = min(max(x, np.float32(-4.0)), np.float32(4.0))
    x2 = x * x
    p = x2 * np.float32(-2.72614225801306e-10) + np.float32(2.77068142495902e-08)
    p = x2 * p + np.float32(-2.10102402082508e-06)
    p = x2 * p + np.float32(-5.69250639462346e-05)
    p = x2 * p + np.float32(-7.34990630326855e-04)
    p = x2 * p + np.float32(-2.95459980854025e-03)
    p = x2 * p + np.float32(-1.60960333262415e-02)
    q = x2 * np.float32(-1.45660718464996e-05) + np.float32(-2.13374055278905e-04)
    q = x2 * q + np.float32(-1.68282697438203e-03)
    q = x2 * q + np.float32(-7.37332916720468e-03)
    q = x2 * q + np.float32(-1.42647390514189e-02)
    return x * p / q


@njit(inline="always")
def tanh32(x):
    if abs(x) < np.float32(0.0004):
        return x
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q
