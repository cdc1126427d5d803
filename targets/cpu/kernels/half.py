"""Floats a CPU has no arithmetic for: float16, bfloat16 and the float8 types
live as their bit patterns (uint16 / uint8); these helpers widen them to
float32 for compute and narrow float32 back with round-to-nearest-even
(ONNX's rounding). A type is named by a code: 0 float16, 1 bfloat16,
2..5 float8 e4m3fn, e4m3fnuz, e5m2, e5m2fnuz.

NaN payloads follow numpy (float16) and ml_dtypes (the others), so results
are bit-identical to `astype` in those libraries."""
import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


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


# float8 formats (codes 2..5): mantissa bits, exponent bias, largest finite
# value, and how NaN/Inf/-0 are encoded: 0 "FN" (no Inf, NaN = S.1111.111),
# 1 "FNUZ" (no Inf, no -0, NaN = 0x80), 2 IEEE (E5M2: Inf and NaN as IEEE).
F8 = ((3.0, 7.0, 448.0, 0.0), (3.0, 8.0, 240.0, 1.0), (2.0, 15.0, 57344.0, 2.0), (2.0, 16.0, 57344.0, 1.0))


@njit(inline="always")
def f8_to_f32(c, code):
    mbits, bias, _, kind = F8[code - 2]
    mb, b, k = int(mbits), int(bias), int(kind)
    c = np.int64(c)
    sign = c & 0x80
    e = (c & 0x7F) >> mb
    m = c & ((1 << mb) - 1)
    if (k == 0 and (c & 0x7F) == 0x7F) or (k == 1 and c == 0x80) or (k == 2 and e == (0x7F >> mb) and m):
        v = np.float32(np.nan)
    elif k == 2 and e == (0x7F >> mb):
        v = np.float32(np.inf)
    elif e == 0:
        v = np.float32(math.ldexp(float(m), 1 - b - mb))
    else:
        v = np.float32(math.ldexp(float(m + (1 << mb)), e - b - mb))
    return -v if sign else v


@njit(inline="always")
def f32_to_f8(x, code, sat):
    """Round to nearest even; out of range (Inf too) saturates to the largest
    finite value, or, with sat=False, becomes Inf (E5M2) or NaN (as ONNX Cast)."""
    mbits, bias, top, kind = F8[code - 2]
    mb, b, k = int(mbits), int(bias), int(kind)
    x = np.float64(x)
    nan = 0x80 if k == 1 else 0x7F if k == 0 else 0x7E
    if x != x:
        return np.uint8(nan if k == 1 else nan | (0x80 if math.copysign(1.0, x) < 0 else 0))
    sign = 0x80 if math.copysign(1.0, x) < 0 else 0
    a = abs(x)
    r = a
    if a < np.inf:
        e = max(math.frexp(a)[1] - 1, 1 - b)          # the binade, subnormals share the lowest one
        q = math.ldexp(1.0, e - mb)
        r = np.rint(a / q) * q
    if r > top:
        if sat:
            r = top
        elif k == 2:
            return np.uint8(sign | 0x7C)
        else:
            return np.uint8(nan if k == 1 else nan | sign)
    if r == 0:
        return np.uint8(0 if k == 1 else sign)
    e = math.frexp(r)[1] - 1
    if e < 1 - b:
        return np.uint8(sign | int(r / math.ldexp(1.0, 1 - b - mb)))
    mant = int(r / math.ldexp(1.0, e - mb)) - (1 << mb)
    return np.uint8(sign | ((e + b) << mb) | mant)


@njit(inline="always")
def widen(h, code):
    """Bits of a float16 (code 0), bfloat16 (1) or float8 (2..5) -> float32."""
    if code == 0:
        return f16_to_f32(h)
    if code == 1:
        return bf16_to_f32(h)
    return f8_to_f32(h, code)


@njit(inline="always")
def narrow(x, code, sat):
    """float32/float64 -> bits of the type, rounding to nearest even (bfloat16
    from float64 rounds via float32, as ml_dtypes does); `sat` is Cast's
    saturate, which only the float8 types read."""
    if code == 0:
        return np.uint16(f32_to_f16(f32_round_odd(x)))
    if code == 1:
        return np.uint16(f32_to_bf16(np.float32(x)))
    return np.uint16(f32_to_f8(x, code, sat))


@njit(inline="always")
def round_trip(x, code, sat):
    """x rounded to the type and back: what an intermediate of that type holds."""
    return widen(narrow(x, code, sat), code)


@njit(cache=True)
def widen_array(src, dst, code):
    """dst (float32, same size) = the values whose bits are in src."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(s.size):
        d[i] = widen(s[i], code)


@njit(cache=True)
def narrow_array(src, dst, code, sat):
    """dst (bits) = src (float32 or float64) rounded to the type."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(s.size):
        d[i] = narrow(s[i], code, sat)
