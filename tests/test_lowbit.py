"""float4 e2m1, float8 e8m0 and the 4- and 2-bit integers: the bit converters
of targets/cpu/kernels/half.py against ml_dtypes (e8m0 against ONNX's own
rounding, onnx.numpy_helper.to_float8e8m0) on every bit pattern and on float32
ties, NaN, Inf and out-of-range values; then Cast, (De)QuantizeLinear and
BitCast models against onnx.reference."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from compiler import compile
from targets.cpu.kernels import half
from tests.helpers import model, reference

F4, E8M0 = np.dtype(ml_dtypes.float4_e2m1fn), np.dtype(ml_dtypes.float8_e8m0fnu)
INTS = [(np.dtype(ml_dtypes.int4), 8, T.INT4), (np.dtype(ml_dtypes.uint4), 9, T.UINT4),
        (np.dtype(ml_dtypes.int2), 10, T.INT2), (np.dtype(ml_dtypes.uint2), 11, T.UINT2)]   # dtype, code, ONNX type
SMALL = [(F4, 6, T.FLOAT4E2M1)] + INTS
SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e10, -1e10, 2.0 ** 31, -2.0 ** 31,
                     2.0 ** 31 - 128, 1e-30, -1e-30, 1e-45], np.float32)
RNG = np.random.default_rng(0)


def all_bits(dt):
    width = {F4: 4, E8M0: 8}.get(dt) or (4 if ml_dtypes.iinfo(dt).bits == 4 else 2)
    return np.arange(1 << width, dtype=np.uint16).astype(np.uint8)


def narrow(x, code, mode=1):
    out = np.empty(x.size, np.uint8)
    half.narrow_array(x, out, code, mode)
    return out


@pytest.mark.parametrize("dt,code", [(F4, 6), (E8M0, 7)] + [(d, c) for d, c, _ in INTS])
def test_widen_every_bit_pattern(dt, code):
    bits = all_bits(dt)
    got = np.empty(bits.size, np.float32)
    half.widen_array(bits, got, code)
    want = bits.view(dt).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def _float32_grid(values):
    """The values, the ties halfway between neighbours, and points just off each."""
    v = np.unique(values[np.isfinite(values)].astype(np.float64))
    mids = (v[1:] + v[:-1]) / 2
    near = np.concatenate([v, mids, np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
                           np.nextafter(mids.astype(np.float32), np.float32(-np.inf)), v * 1.01, v * 0.99, v + 0.5])
    rand = RNG.standard_normal(4096) * 10.0 ** RNG.integers(-3, 4, 4096)
    return np.concatenate([near, rand, SPECIALS, -near]).astype(np.float32)


@pytest.mark.parametrize("dt,code,_", SMALL)
def test_narrow_float32_matches_ml_dtypes(dt, code, _):
    """float4 rounds to nearest even and saturates (NaN -> a zero, as ml_dtypes);
    integers truncate and wrap (NaN and out-of-int32 -> 0, as ml_dtypes here)."""
    x = _float32_grid(all_bits(dt).view(dt).astype(np.float32))
    with np.errstate(all="ignore"):
        want = x.astype(dt).view(np.uint8)
    np.testing.assert_array_equal(narrow(x, code), want)
    np.testing.assert_array_equal(narrow(x, code, 0), want)   # saturate=0 changes nothing here


def test_narrow_float4_from_float64_rounds_once():
    v = all_bits(F4).view(F4).astype(np.float64)
    x = np.concatenate([(v[:, None] * (1 + np.array([0.25, 0.125 + 2 ** -40, 0.125 - 2 ** -40, 0.5]))).ravel(),
                        RNG.standard_normal(4096) * 4])
    np.testing.assert_array_equal(narrow(x, 6), x.astype(F4).view(np.uint8))


@pytest.mark.parametrize("dt,code,_", INTS)
@pytest.mark.parametrize("src", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
def test_narrow_integers_wraps_as_ml_dtypes(dt, code, _, src):
    info = np.iinfo(src)
    values = list(range(-300, 300)) + [int(info.min), int(info.max), int(info.max) - 1, int(info.min) + 1]
    x = np.array([v for v in values if info.min <= v <= info.max], src)
    np.testing.assert_array_equal(narrow(x, code), x.astype(dt).view(np.uint8))


@pytest.mark.parametrize("mode", range(6))
def test_narrow_e8m0_rounds_as_onnx(mode):
    """Every exponent, each with mantissas 0, the half tie, just off it and
    random; NaN/Inf, negatives and subnormals: as ONNX's to_float8e8m0."""
    exps = np.arange(256, dtype=np.uint32) << 23
    mants = np.array([0, 1, 0x3FFFFF, 0x400000, 0x400001, 0x600000, 0x7FFFFF], np.uint32)
    bits = (exps[:, None] | mants).ravel()
    bits = np.concatenate([bits, bits | 0x80000000, RNG.integers(0, 1 << 32, 1 << 14, dtype=np.uint64).astype(np.uint32)])
    x = bits.view(np.float32)
    sat, rnd = bool(mode & 1), ["up", "down", "nearest"][mode >> 1]
    want = numpy_helper.to_float8e8m0(x, sat, rnd).view(np.uint8)
    np.testing.assert_array_equal(narrow(x, 7, mode), want)


# ------------------------------------------------------------------------ models
def _run(m, feeds):
    out = compile(m, target="cpu").run(feeds)
    return [out[o.name] for o in m.graph.output]


def _same(got, want):
    """Same dtype, shape and bytes (NaNs included)."""
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(np.ascontiguousarray(g).view(np.uint8), np.ascontiguousarray(w).view(np.uint8))


@pytest.mark.parametrize("dt,code,elem", SMALL)
@pytest.mark.parametrize("src", [T.FLOAT, T.INT32])
def test_cast_round_trip_as_reference(dt, code, elem, src):
    np_src = helper.tensor_dtype_to_np_dtype(src)
    x = np.array([-9, -8, -7.5, -6.5, -3.5, -2.5, -1.5, -0.5, -0.0, 0.25, 0.75, 1.25, 2.5, 3.5, 5, 6.9, 7, 8, 9,
                  15, 16, 17.9, 100], np.float64)
    x = (np.trunc(x) if np.dtype(np_src).kind == "i" else x).astype(np_src)
    m = model([helper.make_node("Cast", ["x"], ["y"], to=elem), helper.make_node("Cast", ["y"], ["z"], to=src)],
              [("x", src, [x.size])], [("y", elem, [x.size]), ("z", src, [x.size])], opset=25)
    _same(_run(m, {"x": x}), reference(m, {"x": x}))


def test_cast_e8m0_modes_as_reference():
    """Every saturate x round_mode, from float32 and float16 (CastLike too, but the
    reference's CastLike has no round_mode, so the oracle model uses Cast)."""
    x = np.array([0, 0.124, 0.25, 0.5, 0.75, 1.1, 1.5, 3, -3, 2.0 ** 127 * 1.5, 3e38, np.inf, np.nan, 1e-40], np.float32)
    modes = [(sat, rnd) for sat in (0, 1) for rnd in ("up", "down", "nearest")]
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=T.FLOAT16)]
    outs = []
    for k, (sat, rnd) in enumerate(modes):
        nodes += [helper.make_node("Cast", ["x"], [f"y{k}"], to=T.FLOAT8E8M0, saturate=sat, round_mode=rnd),
                  helper.make_node("Cast", ["h"], [f"w{k}"], to=T.FLOAT8E8M0, saturate=sat, round_mode=rnd)]
        outs += [(f"y{k}", T.FLOAT8E8M0, [x.size]), (f"w{k}", T.FLOAT8E8M0, [x.size])]
    nodes.append(helper.make_node("Cast", ["y0"], ["z"], to=T.FLOAT))
    m = model(nodes, [("x", T.FLOAT, [x.size])], outs + [("z", T.FLOAT, [x.size])], opset=25)
    _same(_run(m, {"x": x}), reference(m, {"x": x}))
    like = model([helper.make_node("CastLike", ["x", "like"], ["y"], saturate=0, round_mode="nearest")],
                 [("x", T.FLOAT, [x.size]), ("like", T.FLOAT8E8M0, [1])], [("y", T.FLOAT8E8M0, [x.size])], opset=25)
    _same(_run(like, {"x": x, "like": np.zeros(1, E8M0)}), [numpy_helper.to_float8e8m0(x, False, "nearest")])


QDQ = [(d, e) for d, _, e in SMALL] + [(np.dtype(ml_dtypes.float8_e4m3fn), T.FLOAT8E4M3FN),
                                      (np.dtype(ml_dtypes.float8_e5m2), T.FLOAT8E5M2)]


@pytest.mark.parametrize("dt,elem", QDQ)
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_dequantize_as_reference(dt, elem, per_axis):
    """Per tensor (a fused scalar expression) and per axis from graph inputs (the quant kernels)."""
    x = (RNG.standard_normal((3, 8)) * 6).astype(np.float32)
    x[0, :4] = [0.0, -0.0, 1e6, -1e6]
    scale = np.array([0.5, 1.0, 2.0], np.float32) if per_axis else np.array(0.75, np.float32)
    zero = (np.ones if dt in [d for d, _, _ in INTS] else np.zeros)(scale.shape, np.float32).astype(dt)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0)]
    m = model(nodes, [("x", T.FLOAT, list(x.shape)), ("s", T.FLOAT, list(scale.shape)), ("z", elem, list(scale.shape))],
              [("q", elem, list(x.shape)), ("y", T.FLOAT, list(x.shape))], opset=25)
    feeds = {"x": x, "s": scale, "z": zero}
    _same(_run(m, feeds), reference(m, feeds))


@pytest.mark.parametrize("src,dst", [(T.FLOAT, T.INT32), (T.FLOAT16, T.INT16), (T.BFLOAT16, T.FLOAT16),
                                     (T.INT4, T.UINT4), (T.FLOAT4E2M1, T.INT4), (T.INT2, T.UINT2),
                                     (T.FLOAT8E4M3FN, T.UINT8), (T.BOOL, T.INT8)])
def test_bitcast_as_reference(src, dst):
    bits = RNG.integers(0, 256, 12, dtype=np.uint8)
    x = ({T.INT4: bits & 15, T.FLOAT4E2M1: bits & 15, T.INT2: bits & 3, T.BOOL: bits & 1}.get(src, bits)
         .view(helper.tensor_dtype_to_np_dtype(src)))
    m = model([helper.make_node("BitCast", ["x"], ["y"], to=dst)], [("x", src, [x.size])], [("y", dst, [x.size])],
              opset=26)
    _same(_run(m, {"x": x}), reference(m, {"x": x}))
