"""Types a CPU has no arithmetic for: float16, bfloat16, the float8 and
float4 types and the 4- and 2-bit integers live as their bit patterns (uint16 /
uint8, one element per byte as ml_dtypes stores them); these helpers widen
them to float32 for compute and narrow float32 back. A type is named by a
code: 0 float16, 1 bfloat16, 2..5 float8 e4m3fn, e4m3fnuz, e5m2, e5m2fnuz,
6 float4 e2m1fn, 7 float8 e8m0fnu, 8 int4, 9 uint4, 10 int2, 11 uint2.

Floats round to nearest even, with NaN payloads as numpy (float16) and
ml_dtypes (the others), so results are bit-identical to `astype` in those
libraries; e8m0 rounds as ONNX's Cast (onnx.numpy_helper.to_float8e8m0);
integers truncate and wrap, as ml_dtypes' astype.

`mode` (what Cast and QuantizeLinear ask for): bit 0 saturate (float8 only),
bits 1-2 e8m0's round_mode (0 up, 1 down, 2 nearest)."""
import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from .jit import njit


@intrinsic
def _f32_bits(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))
    return types.uint32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, b):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.uint32), codegen


@njit(inline="always")
def f32_bits(x):
    """The IEEE bits of float32(x), as an int64."""
    return np.int64(_f32_bits(np.float32(x)))


@njit(inline="always")
def bits_f32(b):
    return _bits_f32(np.uint32(b))


@njit(inline="always")
def f16_to_f32(h):
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0x1F:
        return bits_f32(sign | 0x7F800000 | (m << 13))
    if e == 0:                       # zero or subnormal: m * 2**-24, exact in float32
        v = np.float32(m) * np.float32(5.960464477539063e-08)
        return -v if sign else v
    return bits_f32(sign | ((e + 112) << 23) | (m << 13))


@njit(inline="always")
def f32_to_f16(x):
    """float32 -> float16 bits, round to nearest even (F. Giesen's float_to_half_fast3_rtne)."""
    f = f32_bits(x)
    sign = (f >> 16) & 0x8000
    f &= 0x7FFFFFFF
    if f >= 0x7F800000:              # Inf or NaN (numpy keeps the top payload bits)
        if f == 0x7F800000:
            return np.uint16(sign | 0x7C00)
        o = 0x7C00 | ((f & 0x7FFFFF) >> 13)
        return np.uint16(sign | (o + 1 if o == 0x7C00 else o))
    if f >= 0x47800000:              # |x| >= 65536: overflow
        return np.uint16(sign | 0x7C00)
    if f < 0x38800000:               # below the smallest normal: let float32 addition round
        v = bits_f32(f) + np.float32(0.5)
        return np.uint16(sign | (f32_bits(v) - 0x3F000000))
    f += -0x38000000 + 0xFFF + ((f >> 13) & 1)   # rebias the exponent, round half to even
    return np.uint16(sign | (f >> 13))


@njit(inline="always")
def bf16_to_f32(h):
    return bits_f32(np.int64(h) << 16)


@njit(inline="always")
def f32_to_bf16(x):
    f = f32_bits(x)
    if (f & 0x7FFFFFFF) > 0x7F800000:   # NaN: ml_dtypes gives the quiet NaN of its sign
        return np.uint16(((f >> 16) & 0x8000) | 0x7FC0)
    f += 0x7FFF + ((f >> 16) & 1)
    return np.uint16((f >> 16) & 0xFFFF)


@njit(inline="always")
def f32_round_odd(x):
    """float64 -> float32 rounded to odd: a later rounding to float16 is then
    exact RNE (no double rounding), as numpy's direct float64 -> float16 is."""
    x = np.float64(x)
    r = np.float32(x)
    b = f32_bits(r)
    if np.float64(r) != x and x == x and (b & 1) == 0 and (b & 0x7F800000) != 0x7F800000:
        b += -1 if abs(np.float64(r)) > abs(x) else 1
        return bits_f32(b)
    return r


# float8 formats (codes 2..5) and float4 e2m1 (code 6): mantissa bits,
# exponent bias, largest finite value, how NaN/Inf/-0 are encoded (0 "FN": no
# Inf, NaN = S.1111.111; 1 "FNUZ": no Inf, no -0, NaN = 0x80; 2 IEEE: E5M2's
# Inf and NaN; 3 none: float4 saturates, ml_dtypes maps NaN to a zero of the
# other sign) and the sign bit.
F8 = ((3.0, 7.0, 448.0, 0.0, 128.0), (3.0, 8.0, 240.0, 1.0, 128.0), (2.0, 15.0, 57344.0, 2.0, 128.0),
      (2.0, 16.0, 57344.0, 1.0, 128.0), (1.0, 1.0, 6.0, 3.0, 8.0))


@njit
def f8_to_f32(c, code):
    mbits, bias, _, kind, sbit = F8[code - 2]
    mb, b, k, top = int(mbits), int(bias), int(kind), int(sbit)
    low = top - 1
    c = np.int64(c) & (2 * top - 1)
    sign = c & top
    e = (c & low) >> mb
    m = c & ((1 << mb) - 1)
    if (k == 0 and (c & low) == low) or (k == 1 and c == top) or (k == 2 and e == (low >> mb) and m):
        v = np.float32(np.nan)
    elif k == 2 and e == (low >> mb):
        v = np.float32(np.inf)
    elif e == 0:
        v = np.float32(math.ldexp(float(m), 1 - b - mb))
    else:
        v = np.float32(math.ldexp(float(m + (1 << mb)), e - b - mb))
    return -v if sign else v


@njit
def f32_to_f8(x, code, sat):
    """Round to nearest even; out of range (Inf too) saturates to the largest
    finite value, or, with sat=False, becomes Inf (E5M2) or NaN (as ONNX Cast);
    float4 always saturates."""
    mbits, bias, top, kind, sbit = F8[code - 2]
    mb, b, k, sb = int(mbits), int(bias), int(kind), int(sbit)
    x = np.float64(x)
    neg = math.copysign(1.0, x) < 0
    if x != x:
        if k == 3:
            return np.uint8(0 if neg else sb)
        return np.uint8(0x80 if k == 1 else (0x7F if k == 0 else 0x7E) | (0x80 if neg else 0))
    sign = sb if neg else 0
    a = abs(x)
    r = a
    if a < np.inf:
        e = max(math.frexp(a)[1] - 1, 1 - b)          # the binade, subnormals share the lowest one
        q = math.ldexp(1.0, e - mb)
        r = np.rint(a / q) * q
    if r > top:
        if sat or k == 3:
            r = top
        elif k == 2:
            return np.uint8(sign | 0x7C)
        else:
            return np.uint8(0x80 if k == 1 else 0x7F | sign)
    if r == 0:
        return np.uint8(0 if k == 1 else sign)
    e = math.frexp(r)[1] - 1
    if e < 1 - b:
        return np.uint8(sign | int(r / math.ldexp(1.0, 1 - b - mb)))
    mant = int(r / math.ldexp(1.0, e - mb)) - (1 << mb)
    return np.uint8(sign | ((e + b) << mb) | mant)


@njit
def e8m0_to_f32(c):
    """2**(c - 127); 0xFF is NaN."""
    c = np.int64(c)
    return np.float32(np.nan) if c == 0xFF else np.float32(math.ldexp(1.0, c - 127))


@njit
def f32_to_e8m0(x, mode):
    """The float32 exponent, rounded up, down or to nearest by the mantissa
    (the sign is dropped, NaN/Inf -> 0xFF); saturation stops at 0xFE."""
    f = f32_bits(x)
    e = (f >> 23) & 0xFF
    if e == 0xFF:
        return np.uint8(0xFF)
    rnd = (mode >> 1) & 3
    if rnd == 0:
        up = (f & 0x7FFFFF) != 0
    elif rnd == 2:
        up = (f & 0x400000) != 0 and ((f & 0x200000) != 0 or (f & 0x1FFFFF) != 0 or e > 0)
    else:
        up = False
    if up and not (mode & 1 and e == 0xFE):
        e += 1
    return np.uint8(e & 0xFF)


# The small integers (codes 8..11): value mask and sign bit of their bits.
INTS = ((15, 8), (15, 0), (3, 2), (3, 0))


def to_int(x):
    """x as an int64, truncated toward 0; a float NaN or out of int32 range is 0 (as ml_dtypes)."""


@overload(to_int)
def _to_int(x):
    if isinstance(x, types.Float):
        return lambda x: np.int64(x) if abs(x) < 2147483648.0 else np.int64(0)
    return lambda x: np.int64(x)


@njit(inline="always")
def int_to_f32(c, code):
    mask, sign = INTS[code - 8]
    v = np.int64(c) & mask
    return np.float32((v ^ sign) - sign)


@njit(inline="always")
def f32_to_int(x, code):
    """The low bits of trunc(x): the wrap-around of ml_dtypes' astype."""
    mask, _ = INTS[code - 8]
    return np.uint8(to_int(x) & mask)


@njit(inline="always")
def widen(h, code):
    """Bits of a type (its code) -> float32 (exact for every type here)."""
    if code == 0:
        return f16_to_f32(h)
    if code == 1:
        return bf16_to_f32(h)
    if code == 7:
        return e8m0_to_f32(h)
    if code >= 8:
        return int_to_f32(h, code)
    return f8_to_f32(h, code)


@njit(inline="always")
def narrow(x, code, mode):
    """A number -> bits of the type (bfloat16 and e8m0 from float64 round via
    float32, as ml_dtypes and ONNX do); `mode` as in the module docstring."""
    if code == 0:
        return np.uint16(f32_to_f16(f32_round_odd(x)))
    if code == 1:
        return np.uint16(f32_to_bf16(np.float32(x)))
    if code == 7:
        return np.uint16(f32_to_e8m0(x, mode))
    if code >= 8:
        return np.uint16(f32_to_int(x, code))
    return np.uint16(f32_to_f8(x, code, mode & 1))


@njit(inline="always")
def round_trip(x, code, mode):
    """x rounded to the type and back: what an intermediate of that type holds."""
    return widen(narrow(x, code, mode), code)


@njit(cache=True)
def widen_array(src, dst, code):
    """dst (float32, same size) = the values whose bits are in src."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(s.size):
        d[i] = widen(s[i], code)


@njit(cache=True)
def narrow_array(src, dst, code, mode):
    """dst (bits) = src (float32 or float64) rounded to the type."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(s.size):
        d[i] = narrow(s[i], code, mode)
