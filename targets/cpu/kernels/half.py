"""16-bit floats on a CPU without half arithmetic: float16 and bfloat16 values
live as their uint16 bit patterns; these helpers widen them to float32 for
compute and narrow float32 back with round-to-nearest-even (ONNX's rounding).

NaN payloads follow numpy (float16) and ml_dtypes (bfloat16), so results are
bit-identical to `astype` in both libraries."""
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
def widen(h, bf):
    """Bits of a float16 (bf=False) or bfloat16 (bf=True) -> float32."""
    return bf16_to_f32(h) if bf else f16_to_f32(h)


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


@njit(inline="always")
def narrow(x, bf):
    """float32/float64 -> bits of a float16 or bfloat16, rounding to nearest
    even (bfloat16 from float64 rounds via float32, as ml_dtypes does)."""
    return f32_to_bf16(np.float32(x)) if bf else f32_to_f16(f32_round_odd(x))


@njit(inline="always")
def round_trip(x, bf):
    """x rounded to the half type and back: what a half intermediate holds."""
    return widen(narrow(x, bf), bf)


@njit(cache=True)
def widen_array(src, dst, bf):
    """dst (float32, same size) = the halves whose bits are in src (uint16)."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(s.size):
        d[i] = widen(s[i], bf)


@njit(cache=True)
def narrow_array(src, dst, bf):
    """dst (uint16 bits) = src (float32 or float64) rounded to the half type."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for i in range(s.size):
        d[i] = narrow(s[i], bf)
