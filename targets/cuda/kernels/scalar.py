"""Scalar functions for generated CUDA kernels, with numpy's names and semantics.

NumPy ufuncs do not compile inside CUDA kernels, so the CUDA target renders the
CPU scalar table's `np.exp(x)` as `L_scalar.exp(x)` and so on (see
targets/cuda/scalar.py). Results are float64 or the operands' type; the fused
kernel casts them to the output dtype, as on the CPU."""
import math

import numpy as np
from numba import config, cuda

dev = cuda.jit(device=True)


# transcendental: math.* compute in the argument's precision class ----------------
@dev
def exp(x):
    return math.exp(x)


@dev
def log(x):
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


@dev
def log1p(x):
    return math.log1p(x) if x > -1 else (-math.inf if x == -1 else math.nan)


@dev
def sqrt(x):
    return math.sqrt(x) if x >= 0 else math.nan


@dev
def sin(x):
    return math.sin(x)


@dev
def cos(x):
    return math.cos(x)


@dev
def tan(x):
    return math.tan(x)


@dev
def arcsin(x):
    return math.asin(x)


@dev
def arccos(x):
    return math.acos(x)


@dev
def arctan(x):
    return math.atan(x)


@dev
def sinh(x):
    return math.sinh(x)


@dev
def cosh(x):
    return math.cosh(x)


@dev
def erf32(x):
    """The CPU's vectorisable float32 erf (targets/cpu/kernels/scalar.py); here the device's own."""
    return math.erf(x)


@dev
def tanh32(x):
    return math.tanh(x)


@dev
def tanh(x):
    return math.tanh(x)


@dev
def arcsinh(x):
    return math.asinh(x)


@dev
def arccosh(x):
    return math.acosh(x)


@dev
def arctanh(x):
    return math.atanh(x)


@dev
def power(x, y):
    return math.pow(x, y)


# rounding and comparisons: NaN and infinities pass through as in numpy ---------------
@dev
def isnan(x):
    return x != x


@dev
def floor(x):
    if not (abs(x) < 4503599627370496.0):   # NaN, inf, or already integral (|x| >= 2**52)
        return float(x)
    return float(math.floor(x))


@dev
def ceil(x):
    return -floor(-x)


@dev
def rint(x):
    """Round half to even, as np.rint."""
    f = floor(x)
    d = x - f
    if d > 0.5 or (d == 0.5 and f % 2.0 != 0.0):
        f += 1.0
    return f


@dev
def sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else x * 0.0)


@dev
def maximum(x, y):
    """NaN-propagating, as np.maximum."""
    if x != x or y != y:
        return x + y
    return x if x > y else y


@dev
def minimum(x, y):
    if x != x or y != y:
        return x + y
    return x if x < y else y


@dev
def pymax(x, y):
    """Python's max(x, y): y only when y > x."""
    return y if y > x else x


@dev
def pymin(x, y):
    return y if y < x else x


@dev
def float64(x):
    return float(x)


@dev
def fmod(x, y):
    return math.fmod(x, y) if y != 0 else math.nan


@dev
def mod(x, y):
    """Float Mod with the divisor's sign, as np.mod."""
    if y == 0:
        return math.nan
    r = math.fmod(x, y)
    if r != 0 and (r < 0) != (y < 0):
        r += y
    return r


# integer helpers: the same semantics as targets/cpu/kernels/scalar.py ------------
@dev
def tdiv(a, b):
    """Integer division truncating toward zero, as ONNX Div does."""
    if b == 0:
        return a * 0
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@dev
def imod(a, b):
    if b == 0:
        return a * 0
    return a % b


@dev
def ifmod(a, b):
    if b == 0:
        return a * 0
    r = a % b
    if r != 0 and (r < 0) != (a < 0):
        r -= b
    return r


@dev
def ipow(a, b):
    if b < 0:
        return a * 0 + (1 if a == 1 else (1 if (a == -1 and b % 2 == 0) else (-1 if a == -1 else 0)))
    r = a * 0 + 1
    while b > 0:
        if b & 1:
            r = r * a
        a = a * a
        b >>= 1
    return r


NUMPY_NAMES = ("exp", "log", "log1p", "sqrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh",
               "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "power", "isnan", "floor", "ceil", "rint",
               "sign", "maximum", "minimum", "float64", "fmod", "mod")

if config.ENABLE_CUDASIM:
    # Simulated kernels run as plain Python, where math.* raises on domain errors
    # and overflow; numpy's functions give the IEEE results a GPU gives.
    for _name in NUMPY_NAMES:
        globals()[_name] = getattr(np, _name)
