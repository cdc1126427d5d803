"""float16 and bfloat16: the bit converters against numpy / ml_dtypes on every
half bit pattern, and compiled half models against onnxruntime and numpy."""
import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from compiler import compile
from targets.cpu.kernels import half
from tests.helpers import model, reference

BF16 = np.dtype(ml_dtypes.bfloat16)
HALVES = [(np.dtype(np.float16), 0, TensorProto.FLOAT16), (BF16, 1, TensorProto.BFLOAT16)]   # dtype, kernel code, ONNX type
ALL_BITS = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def bits_of(a):
    return np.asarray(a).view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


@pytest.mark.parametrize("dt,bf,_", HALVES)
def test_widen_every_bit_pattern(dt, bf, _):
    got = np.empty(ALL_BITS.size, np.float32)
    half.widen_array(ALL_BITS, got, bf)
    np.testing.assert_array_equal(bits_of(got), bits_of(ALL_BITS.view(dt).astype(np.float32)))


@pytest.mark.parametrize("dt,bf,_", HALVES)
def test_narrow_float32_rounds_like_numpy(dt, bf, _):
    """Every half value, the ties halfway to its neighbours and the values just
    off them (round to nearest even), NaN payloads, overflow and subnormals."""
    grid = bits_of(ALL_BITS.view(dt).astype(np.float32)).astype(np.uint64)
    step = 1 << (13 if not bf else 16)           # one half ulp in float32 bits (normal range)
    offsets = np.array([0, 1, step // 2 - 1, step // 2, step // 2 + 1, step - 1, 3 * step // 2], np.uint64)
    near = ((grid[:, None] + offsets) & 0xFFFFFFFF).astype(np.uint32).ravel()
    rand = np.random.default_rng(0).integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([near, rand]).view(np.float32)
    got = np.empty(x.size, np.uint16)
    half.narrow_array(x, got, bf, True)
    with np.errstate(all="ignore"):
        want = bits_of(x.astype(dt))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dt,bf,_", HALVES)
def test_narrow_float64_has_no_double_rounding(dt, bf, _):
    """float64 -> float16 rounds once (as numpy); -> bfloat16 via float32 (as ml_dtypes)."""
    ulp = 2.0 ** (-10 if not bf else -7)
    with np.errstate(invalid="ignore"):
        grid = ALL_BITS.view(dt).astype(np.float64)
        x = (grid[:, None] * (1 + ulp * np.array([0.5, 0.5 + 2 ** -30, 0.5 - 2 ** -30, 0.25]))).ravel()
    got = np.empty(x.size, np.uint16)
    half.narrow_array(x, got, bf, True)
    with np.errstate(all="ignore"):
        want = bits_of(x.astype(dt))
    np.testing.assert_array_equal(got, want)


def dense_model(elem, dt, store=None):
    """MatMul + Add + Softmax + LayerNormalization, weights rounded to `dt`, stored as `store`."""
    rng = np.random.default_rng(0)
    w, b, g, beta = (rng.standard_normal(s).astype(np.float32).astype(dt).astype(store or dt)
                     for s in ((8, 16), 16, 16, 16))
    return model([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
                  helper.make_node("Softmax", ["a"], ["s"], axis=-1),
                  helper.make_node("LayerNormalization", ["a", "g", "beta"], ["y"], axis=-1)],
                 [("x", elem, ["n", 8])], [("s", elem, ["n", 16]), ("y", elem, ["n", 16])],
                 {"w": w, "b": b, "g": g, "beta": beta})


def test_float16_model_matches_onnxruntime(tmp_path):
    m = dense_model(TensorProto.FLOAT16, np.float16)
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float16)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = compile(m, cache_dir=str(tmp_path))(x)
    for g, w in zip(got, want):
        assert g.dtype == np.float16 and g.shape == w.shape
        np.testing.assert_allclose(g.astype(np.float32), w.astype(np.float32), rtol=4e-3, atol=2e-3)


def test_bfloat16_model_matches_float32_oracle(tmp_path):
    """onnxruntime has no bfloat16 MatMul on the CPU: the oracle is the float32
    model on the same (bfloat16-valued) numbers, rounded to bfloat16."""
    m = dense_model(TensorProto.BFLOAT16, BF16)
    m32 = dense_model(TensorProto.FLOAT, BF16, np.float32)
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(BF16)
    want = ort.InferenceSession(m32.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.astype(np.float32)})
    got = compile(m, cache_dir=str(tmp_path))(x)
    for g, w in zip(got, want):
        assert g.dtype == BF16
        np.testing.assert_allclose(g.astype(np.float32), w, rtol=2 ** -6, atol=2 ** -6)


@pytest.mark.parametrize("dt,_,elem", HALVES)
def test_data_movement_keeps_bits(tmp_path, dt, _, elem):
    """Transpose, Concat, Slice and Gather move half bits untouched, NaN payloads included."""
    x = ALL_BITS[:4096].reshape(16, 256).copy()
    x[0, :8] = [0x7C01, 0xFE12, 0x7FFF, 0x8001, 0x7C00, 0xFC00, 0x0001, 0x8000]
    m = model([helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
               helper.make_node("Concat", ["t", "t"], ["c"], axis=1),
               helper.make_node("Slice", ["c", "st", "en"], ["s"]),
               helper.make_node("Gather", ["s", "idx"], ["y"], axis=0)],
              [("x", elem, [16, 256])], [("y", elem, [4, 27])],
              {"st": np.array([1, 3]), "en": np.array([200, 30]), "idx": np.array([5, 0, 7, 198])})
    got = compile(m, cache_dir=str(tmp_path))(x.view(dt))
    want = np.concatenate([x.T, x.T], axis=1)[1:200, 3:30][[5, 0, 7, 198]]
    assert got.dtype == dt
    np.testing.assert_array_equal(got.view(np.uint16), want)


@pytest.mark.parametrize("dt,bf,elem", HALVES)
def test_cast_every_bit_pattern(tmp_path, dt, bf, elem):
    """half -> float32 -> half and half -> float64 round trips, against numpy / ml_dtypes."""
    m = model([helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
               helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
               helper.make_node("Cast", ["f"], ["y"], to=elem)],
              [("x", elem, [1 << 16])], [("f", TensorProto.FLOAT, [1 << 16]), ("d", TensorProto.DOUBLE, [1 << 16]),
                                         ("y", elem, [1 << 16])])
    x = ALL_BITS.view(dt)
    f, d, y = compile(m, cache_dir=str(tmp_path))(x)
    np.testing.assert_array_equal(bits_of(f), bits_of(x.astype(np.float32)))
    np.testing.assert_array_equal(d, x.astype(np.float64))    # NaN == NaN here: float64 quiets signalling NaNs
    np.testing.assert_array_equal(y.view(np.uint16), bits_of(x.astype(np.float32).astype(dt)))


def nchw_ops():
    return [
        (helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), {"w": (4, 3, 3, 3)}, (2, 4, 6, 6)),
        (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2]), {}, (2, 3, 5, 5)),
        (helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 3]), {}, (2, 1, 6, 1)),
    ]


@pytest.mark.parametrize("dt,bf,elem", HALVES)
@pytest.mark.parametrize("case", range(3))
def test_compute_ops_equal_float32_rounded(tmp_path, dt, bf, elem, case):
    """Conv, pooling and reductions on halves compute in float32: equal to the
    float32 op (onnx.reference) on the widened inputs, rounded to the half type."""
    node, weights, out_shape = nchw_ops()[case]
    rng = np.random.default_rng(case)
    inits = {k: rng.standard_normal(s).astype(dt) for k, s in weights.items()}
    x = rng.standard_normal((2, 3, 6, 6)).astype(dt)

    def build(e, cast):
        return model([node], [("x", e, x.shape)], [("y", e, out_shape)],
                     {k: v.astype(cast) for k, v in inits.items()}, opset=17)
    want = reference(build(TensorProto.FLOAT, np.float32), {"x": x.astype(np.float32)})[0].astype(dt)
    got = compile(build(elem, dt), cache_dir=str(tmp_path))(x)
    assert got.dtype == dt
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2 ** (-10 if not bf else -7), atol=1e-6)


@pytest.mark.parametrize("dt,bf,elem", HALVES)
def test_fused_chain_rounds_each_op_like_numpy(tmp_path, dt, bf, elem):
    """A fused (x * y + z) - max(x, z) rounds every intermediate to the half
    type, as numpy's float16 and ml_dtypes' bfloat16 arithmetic do: bit-equal."""
    m = model([helper.make_node("Mul", ["x", "y"], ["p"]), helper.make_node("Add", ["p", "z"], ["s"]),
               helper.make_node("Max", ["x", "z"], ["mx"]), helper.make_node("Sub", ["s", "mx"], ["o"])],
              [("x", elem, [64, 33]), ("y", elem, [64, 33]), ("z", elem, [33])], [("o", elem, [64, 33])])
    rng = np.random.default_rng(2)
    x, y = (rng.standard_normal((64, 33)).astype(dt) * dt.type(3) for _ in range(2))
    z = rng.standard_normal(33).astype(dt)
    got = compile(m, cache_dir=str(tmp_path))(x, y, z)
    want = (x * y + z) - np.maximum(x, z)
    assert got.dtype == dt
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def test_softmax_runs_at_the_half_precision(tmp_path):
    """Softmax on float16 rounds each step of its function body (max, x - max,
    exp, sum, divide) to float16, as onnx.reference's numpy does over the last
    axis (numpy sums float16 in float32 there; ml_dtypes' bfloat16 sums round
    every addition, so bfloat16 has no bit-exact oracle): bit-equal."""
    dt, elem = np.dtype(np.float16), TensorProto.FLOAT16
    m = model([helper.make_node("Softmax", ["x"], ["y"])], [("x", elem, [16, 3, 37])], [("y", elem, [16, 3, 37])])
    x = (np.random.default_rng(3).standard_normal((16, 3, 37)) * 4).astype(dt)
    x[0, 0, 5:] = -np.inf
    got = compile(m, cache_dir=str(tmp_path))(x)
    assert got.dtype == dt
    np.testing.assert_array_equal(got.view(np.uint16), reference(m, {"x": x})[0].view(np.uint16))


FLOAT8 = [(np.dtype(t), code, elem) for code, (t, elem) in enumerate([
    (ml_dtypes.float8_e4m3fn, TensorProto.FLOAT8E4M3FN), (ml_dtypes.float8_e4m3fnuz, TensorProto.FLOAT8E4M3FNUZ),
    (ml_dtypes.float8_e5m2, TensorProto.FLOAT8E5M2), (ml_dtypes.float8_e5m2fnuz, TensorProto.FLOAT8E5M2FNUZ)], 2)]


@pytest.mark.parametrize("dt,code,_", FLOAT8)
def test_float8_converters_match_ml_dtypes(dt, code, _):
    """All 256 codes widen exactly; narrowing without saturation is ml_dtypes' astype."""
    codes = np.arange(256, dtype=np.uint16).astype(np.uint8)
    got = np.empty(256, np.float32)
    half.widen_array(codes, got, code)
    want = codes.view(dt).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    grid = want[np.isfinite(want)].astype(np.float64)
    rng = np.random.default_rng(code)
    x = np.concatenate([grid[:, None] * (1 + np.array([0, 2 ** -4, 2 ** -3, 2 ** -3 + 2 ** -20, -2 ** -5])),
                        rng.standard_normal((4096, 1)) * 10.0 ** rng.integers(-8, 6, (4096, 1))], axis=None)
    x = np.concatenate([x, [np.nan, -np.nan, np.inf, -np.inf, 1e9, -1e9, -0.0, -1e-30]]).astype(np.float32)
    bits = np.empty(x.size, np.uint8)
    half.narrow_array(x, bits, code, False)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(bits, x.astype(dt).view(np.uint8))


@pytest.mark.parametrize("dt,code,elem", FLOAT8)
@pytest.mark.parametrize("sat", [1, 0])
def test_cast_to_float8_saturates_as_onnx_reference(tmp_path, dt, code, elem, sat):
    x = np.array([0.4789, -3.3, 1e6, 1e-7, np.nan, np.inf, -np.inf, -1e-7, 250.0, -470.0, 0.0], np.float32)
    m = model([helper.make_node("Cast", ["x"], ["y"], to=elem, saturate=sat),
               helper.make_node("Cast", ["y"], ["z"], to=TensorProto.FLOAT)],
              [("x", TensorProto.FLOAT, [x.size])], [("y", elem, [x.size]), ("z", TensorProto.FLOAT, [x.size])], opset=21)
    y, z = compile(m, cache_dir=str(tmp_path))(x)
    want_y, want_z = reference(m, {"x": x})
    assert y.dtype == dt
    np.testing.assert_array_equal(y.view(np.uint8), want_y.view(np.uint8))
    np.testing.assert_array_equal(z, want_z)
