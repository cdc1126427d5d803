"""compile(threads=2) splits large work over Numba threads: GEMMs by columns (thin ones by rows),
batched MatMuls by batch, Softmax/LayerNormalization by rows, fused elementwise
loops by their first loop, convolutions by output channels or tile rows. Each model here is large enough to take those paths;
the results must match onnx.reference, and threads=1 must stay serial."""
import glob
import os

import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile
from targets.cpu import elementwise, lower_nn
from compiler.ir import Node, Value
from tests.helpers import F, model, reference

RNG = np.random.default_rng(7)


def _sources(cache_dir) -> str:
    return "\n".join(open(p).read() for p in glob.glob(os.path.join(cache_dir, "src", "onnxjit_[gk]_*.py")))


def _encoder_block():
    """MatMul + bias, erf GELU, Softmax, LayerNormalization, a batched attention MatMul."""
    s, h, f = 256, 512, 512
    inits = {"w1": RNG.standard_normal((h, f)).astype(np.float32) / 8, "b1": RNG.standard_normal(f).astype(np.float32),
             "w2": RNG.standard_normal((f, h)).astype(np.float32) / 16, "g": RNG.uniform(0.5, 2, h).astype(np.float32),
             "beta": RNG.standard_normal(h).astype(np.float32), "shape": np.array([1, s, 8, 64], np.int64),
             "half": np.array(0.5, np.float32), "one": np.array(1.0, np.float32),
             "rsqrt2": np.array(2 ** -0.5, np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Mul", ["a1", "rsqrt2"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
             helper.make_node("Add", ["g1", "one"], ["g2"]), helper.make_node("Mul", ["a1", "g2"], ["g3"]),
             helper.make_node("Mul", ["g3", "half"], ["gelu"]),
             helper.make_node("MatMul", ["gelu", "w2"], ["m2"]),
             helper.make_node("LayerNormalization", ["m2", "g", "beta"], ["ln"], axis=-1),
             helper.make_node("Reshape", ["ln", "shape"], ["heads"]),
             helper.make_node("Transpose", ["heads"], ["q"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["heads"], ["k"], perm=[0, 2, 3, 1]),
             helper.make_node("MatMul", ["q", "k"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", "q"], ["ctx"])]
    m = model(nodes, [("x", F, [1, s, h])], [("ctx", F, [1, 8, s, 64]), ("gelu", F, [1, s, f])], inits)
    return m, {"x": RNG.standard_normal((1, s, h)).astype(np.float32)}


def _broadcast_chain():
    """(1, 128, 768) + (768,) then * (1, 128, 1): merged into a 2-D loop nest."""
    m = model([helper.make_node("Add", ["x", "b"], ["y"]), helper.make_node("Mul", ["y", "s"], ["z"]),
               helper.make_node("Tanh", ["z"], ["t"])],
              [("x", F, [1, 128, 768]), ("s", F, [1, 128, 1])], [("t", F, [1, 128, 768])],
              {"b": RNG.standard_normal(768).astype(np.float32)})
    return m, {"x": RNG.standard_normal((1, 128, 768)).astype(np.float32),
               "s": RNG.standard_normal((1, 128, 1)).astype(np.float32)}


def _cnn(dtype=np.float32):
    """3x3 convs (Winograd), a 1x1 conv and a strided 3x3 (float64: the input is the GEMM operand,
    im2col; float32: kernels/conv_small.py), with bias, ReLU and a residual Add in their
    epilogues."""
    c, hw = 32, 40
    elem = TensorProto.DOUBLE if dtype == np.float64 else F
    w = lambda *s: (RNG.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(dtype)   # noqa: E731
    inits = {"w1": w(c, c, 3, 3), "b1": RNG.standard_normal(c).astype(dtype), "w2": w(c, c, 3, 3),
             "w3": w(2 * c, c, 1, 1), "w4": w(2 * c, 2 * c, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], pads=[1] * 4), helper.make_node("Relu", ["y1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y2"], pads=[1] * 4), helper.make_node("Add", ["y2", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["r2"]), helper.make_node("Conv", ["r2", "w3"], ["y3"]),
             helper.make_node("Conv", ["y3", "w4"], ["y4"], pads=[1] * 4, strides=[2, 2])]
    m = model(nodes, [("x", elem, [1, c, hw, hw])], [("y4", elem, [1, 2 * c, hw // 2, hw // 2])], inits)
    return m, {"x": RNG.standard_normal((1, c, hw, hw)).astype(dtype)}


def _tall_thin():
    """A 512x64 @ 64x32 MatMul (too narrow for column bands: split by rows), then a product
    by a 32x256 input (no constant to pack: plain column bands)."""
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("MatMul", ["y", "z"], ["u"])],
              [("x", F, [512, 64]), ("z", F, [32, 256])], [("u", F, [512, 256])],
              {"w": RNG.standard_normal((64, 32)).astype(np.float32)})
    return m, {"x": RNG.standard_normal((512, 64)).astype(np.float32),
               "z": RNG.standard_normal((32, 256)).astype(np.float32)}


def _mlp_row():
    """Batch-1 Gemm layers: a row times a 784x512 and a 512x512 constant (their columns in
    bands on 2 threads), then a 512x10 one (serial)."""
    w = lambda *s: (RNG.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)   # noqa: E731
    inits = {"w1": w(512, 784), "b1": w(512), "w2": w(512, 512), "b2": w(512), "w3": w(10, 512), "b3": w(10)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], transB=1), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["y"], transB=1)]
    m = model(nodes, [("x", F, [1, 784])], [("y", F, [1, 10]), ("r1", F, [1, 512])], inits)
    return m, {"x": RNG.standard_normal((1, 784)).astype(np.float32)}


def _row_by_input():
    """A row times a 256x512 matrix that is an input (no constant to transpose: BLAS column bands)."""
    m = model([helper.make_node("MatMul", ["x", "z"], ["y"])], [("x", F, [1, 256]), ("z", F, [256, 512])],
              [("y", F, [1, 512])], {})
    return m, {"x": RNG.standard_normal((1, 256)).astype(np.float32),
               "z": RNG.standard_normal((256, 512)).astype(np.float32)}


@pytest.mark.parametrize("build", [_encoder_block, _broadcast_chain, _cnn, _mlp_row, _row_by_input, _tall_thin])
@pytest.mark.parametrize("threads", [1, 2])
def test_threaded_kernels_match_reference(build, threads, tmp_path):
    m, feeds = build()
    got = compile(m, cache_dir=str(tmp_path), threads=threads).run(feeds)
    for want, (name, g) in zip(reference(m, feeds), got.items()):
        np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-4, err_msg=name)
    text = _sources(str(tmp_path))
    assert any(mark in text for mark in ("prange(", "_par(", "gemm_rows(", "gemm_cols(", "col_bands(")) == (threads == 2)


def test_encoder_block_takes_every_split_path(tmp_path):
    m, feeds = _encoder_block()
    compile(m, cache_dir=str(tmp_path), threads=2).run(feeds)
    text = _sources(str(tmp_path))
    for call in ("gemm_packed_col_bands(", "layernorm_rows_par(", "softmax_rows_par(", "matmul_batched_par("):
        assert call in text, call


def test_gemms_split_by_rows_or_columns(tmp_path):
    m, feeds = _tall_thin()
    compile(m, cache_dir=str(tmp_path), threads=2).run(feeds)
    text = _sources(str(tmp_path))
    assert "gemm_rows(" in text and "gemm_col_bands(" in text


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_narrow_pointwise_conv_splits_by_rows(dtype, threads, tmp_path):
    """A 1x1 conv to 6 channels on 64x64 (too few filters for channel bands) with bias, a
    residual Add and ReLU: at 2 threads its bands are rows of the image (float32: read in
    place by the micro-kernel, kernels/pointwise.py; float64: each band's own im2col), and it
    matches the reference."""
    elem = TensorProto.DOUBLE if dtype == np.float64 else F
    inits = {"w": RNG.standard_normal((6, 32, 1, 1)).astype(dtype), "b": RNG.standard_normal(6).astype(dtype)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"]), helper.make_node("Add", ["y", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["u"])]
    m = model(nodes, [("x", elem, [1, 32, 64, 64]), ("r", elem, [1, 6, 64, 64])], [("u", elem, [1, 6, 64, 64])], inits)
    feeds = {"x": RNG.standard_normal((1, 32, 64, 64)).astype(dtype), "r": RNG.standard_normal((1, 6, 64, 64)).astype(dtype)}
    got = compile(m, cache_dir=str(tmp_path), threads=threads).run(feeds)["u"]
    np.testing.assert_allclose(got, reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
    split = "L_pointwise.conv_par(" if dtype == np.float32 else "conv_gemm_par("
    assert (split in _sources(str(tmp_path))) == (threads == 2)


@pytest.mark.parametrize("mh", [(50, 7), (640, 7), (5, 7), (20, 14), (16, 28)])
@pytest.mark.parametrize("parts", [2, 3])
def test_pointwise_conv_par_bands(mh, parts):
    """kernels/pointwise.conv_par's bands: output channels in whole tiles of rows on planes up
    to share.CHANNEL_SPLIT_MAX positions (some bands empty where there are fewer tiles than parts),
    rows above; with bias, a residual and a clamp, against numpy in float64."""
    from targets.cpu.kernels import nn, pointwise
    m, h = mh
    c = 24
    x = RNG.standard_normal((2, c, 1, h, h)).astype(np.float32)
    w = RNG.standard_normal((m, c, 1, 1, 1)).astype(np.float32)
    b = RNG.standard_normal(m).astype(np.float32)
    res = RNG.standard_normal((2, m, 1, h, h)).astype(np.float32)
    out = np.full_like(res, np.nan)
    pointwise.conv_par(x, w, b, out, res, nn.ACT_CLIP, -0.5, 1.5, parts)
    want = np.einsum("mc,ncp->nmp", w.reshape(m, c).astype(np.float64), x.reshape(2, c, -1)) + b[:, None]
    want = np.clip(want + res.reshape(2, m, -1), -0.5, 1.5)
    np.testing.assert_allclose(out.reshape(2, m, -1), want, rtol=1e-4, atol=1e-4)


def test_strided_padded_1x1_conv_the_inputs_size_is_not_pointwise(tmp_path):
    """A 1x1 conv with stride 2 and pads of 16 on 32x32 has a 32x32 output, as a pointwise
    conv's, but reads every other pixel and a zero border: its 2-thread row bands must too
    (20 output channels: kernels/conv_small.py, which takes multiples of a vector, leaves it to them)."""
    inits = {"w": RNG.standard_normal((20, 128, 1, 1)).astype(np.float32), "b": RNG.standard_normal(20).astype(np.float32)}
    m = model([helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[16] * 4)],
              [("x", F, [1, 128, 32, 32])], [("y", F, [1, 20, 32, 32])], inits)
    feeds = {"x": RNG.standard_normal((1, 128, 32, 32)).astype(np.float32)}
    got = compile(m, cache_dir=str(tmp_path), threads=2).run(feeds)["y"]
    np.testing.assert_allclose(got, reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
    assert "conv_gemm_par(" in _sources(str(tmp_path))


def test_mlp_row_splits_its_weights_in_column_bands(tmp_path):
    m, feeds = _mlp_row()
    compile(m, cache_dir=str(tmp_path), threads=2).run(feeds)
    text = _sources(str(tmp_path))
    assert text.count("gemv_packed_par(") == 2 and text.count("gemv_packed(") == 1 and "gemm_" not in text


def test_row_by_an_input_splits_by_columns(tmp_path):
    m, feeds = _row_by_input()
    compile(m, cache_dir=str(tmp_path), threads=2).run(feeds)
    assert "gemm_cols(" in _sources(str(tmp_path))


# float32: the strided conv (and with AVX-512 the 1x1 one) on conv_small.py; float64: the GEMM's bands
@pytest.mark.parametrize("dtype,calls", [(np.float32, ("winograd.conv_par(", "conv_small.conv_par(")),
                                         (np.float64, ("conv_winograd_par(", "conv_gemm_par("))])
def test_cnn_takes_the_split_conv_paths(tmp_path, dtype, calls, monkeypatch):
    monkeypatch.setattr(lower_nn, "WINO32", True)     # Winograd's bands, on any CPU
    m, feeds = _cnn(dtype)
    compile(m, cache_dir=str(tmp_path), threads=2).run(feeds)
    text = _sources(str(tmp_path))
    for call in calls:
        assert call in text, call


def _group(shape, input_shapes):
    ins = [Value(f"i{k}", np.dtype(np.float32), s) for k, s in enumerate(input_shapes)]
    out = Value("o", np.dtype(np.float32), shape)
    return Node("Fused", ins, [out], {"body": []})


@pytest.mark.parametrize("out,ins,want_out,want_ins", [
    ((1, 128, 768), [(1, 128, 768), (768,)], (128, 768), [(128, 768), (1, 768)]),
    ((2, 3, 4, 5), [(2, 3, 4, 5), (1, 1, 4, 5)], (6, 20), [(6, 20), (1, 20)]),
    ((2, 3, 4), [(2, 1, 4), (3, 1)], (2, 3, 4), [(2, 1, 4), (1, 3, 1)]),
    ((4, 1, 6), [(4, 1, 6), (1, 1, 1)], (24,), [(24,), (1,)]),
])
def test_loop_shapes_merge_dims_that_broadcast_alike(out, ins, want_out, want_ins):
    assert elementwise.loop_shapes(_group(out, ins)) == (want_out, want_ins)
