"""Conv epilogue fusion (compiler/passes/conv_epilogue.py) and the direct / threaded
paths of the conv kernel (targets/cpu/kernels/nn.py: conv_fused).

Oracle: onnx.reference. Every model runs fused and unfused (fusion=False), both
against the reference, and the pass must actually have absorbed the epilogue."""
import numpy as np
import pytest
from onnx import helper

from compiler import compile
from compiler.driver import lower_to_ir
from compiler.frontend import to_ir
from compiler.passes.conv_bn import fold_conv_batchnorm
from compiler.passes.conv_epilogue import fuse_conv_epilogues
from targets.cpu.kernels import callback_conv_gemm, callback_dw, nn, window3x3  # noqa: F401 (the callbacks bind the
# symbols nn's float32 paths call: without them a direct call of conv_gemm_par crashed the process)

from .helpers import F, model, reference

RNG = np.random.default_rng(7)


def _ir(m, feeds):
    return lower_to_ir(m, {k: (v.dtype, v.shape, None) for k, v in feeds.items()})


def _conv_model(c, m, group, tail, act_inits=None, hw=9, stride=1, residual=False):
    """x -> Conv -> [Add residual] -> tail nodes (reading "y", writing "z")."""
    w = RNG.standard_normal((m, c // group, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(m).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y0"], pads=[1, 1, 1, 1], group=group,
                              strides=[stride, stride])]
    inputs = [("x", F, [1, c, hw, hw])]
    oh = (hw - 1) // stride + 1
    if residual:
        nodes.append(helper.make_node("Add", ["r", "y0"], ["y"]))
        inputs.append(("r", F, [1, m, oh, oh]))
    else:
        nodes[0].output[0] = "y"
    nodes += tail
    return model(nodes, inputs, [("z", F, [1, m, oh, oh])], dict({"w": w, "b": b}, **(act_inits or {})))


def _act(op, **attrs):
    return [helper.make_node(op, ["y"], ["z"], **attrs)]


CASES = {
    "relu_residual": dict(tail=_act("Relu"), residual=True),
    "clip6": dict(tail=[helper.make_node("Clip", ["y", "lo", "hi"], ["z"])],
                  act_inits={"lo": np.float32(0), "hi": np.float32(6)}),
    "silu": dict(tail=[helper.make_node("Sigmoid", ["y"], ["s"]), helper.make_node("Mul", ["s", "y"], ["z"])]),
    "sigmoid_dw": dict(tail=_act("Sigmoid"), group=8),
    "hardswish_dw_s2": dict(tail=_act("HardSwish"), group=8, stride=2),
    "hardsigmoid": dict(tail=_act("HardSigmoid", alpha=0.3, beta=0.4)),
    "leaky_group2_residual": dict(tail=_act("LeakyRelu", alpha=0.1), group=2, residual=True),
    "add_only": dict(tail=[helper.make_node("Identity", ["y"], ["z"])], residual=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_and_unfused_match_reference(name, tmp_path):
    case = dict(CASES[name])
    m = _conv_model(8, 8, case.pop("group", 1), **case)
    feeds = {"x": RNG.standard_normal((1, 8, 9, 9)).astype(np.float32)}
    if "r" in [i.name for i in m.graph.input]:
        oh = m.graph.output[0].type.tensor_type.shape.dim[2].dim_value
        feeds["r"] = RNG.standard_normal((1, 8, oh, oh)).astype(np.float32)
    want = reference(m, feeds)[0]
    for fusion in (True, False):
        got = compile(m, cache_dir=str(tmp_path), fusion=fusion).run(feeds)["z"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"fusion={fusion}")
    graph = fuse_conv_epilogues(_ir(m, feeds))
    assert [n.op for n in graph.nodes] == ["Conv"], graph.nodes


def test_not_fused_when_the_conv_output_is_read_twice():
    m = model([helper.make_node("Conv", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"]),
               helper.make_node("Add", ["y", "z"], ["o"])],
              [("x", F, [1, 2, 5, 5])], [("o", F, [1, 2, 3, 3])],
              {"w": RNG.standard_normal((2, 2, 3, 3)).astype(np.float32)})
    feeds = {"x": RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)}
    graph = fuse_conv_epilogues(_ir(m, feeds))
    assert [n.op for n in graph.nodes] == ["Conv", "Relu", "Add"]


@pytest.mark.parametrize("group,k,stride", [(1, 3, 1), (1, 1, 1), (1, 3, 2), (32, 3, 1), (32, 3, 2), (16, 5, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_threads_and_direct_paths(group, k, stride, threads):
    """Large enough to take the threaded paths (rows of the GEMM, planes of the direct conv)."""
    c, m, hw = 32, 64 if group == 1 else 32, 40
    if group > 1:   # above nn.PAR_MIN_FLOPS, so threads=2 takes the prange path
        c = m = group = 64
        hw = 136
    x = RNG.standard_normal((1, c, 1, hw, hw)).astype(np.float32)
    w = RNG.standard_normal((m, c // group, 1, k, k)).astype(np.float32)
    b = RNG.standard_normal(m).astype(np.float32)
    p = k // 2
    oh = (hw + 2 * p - k) // stride + 1
    res = RNG.standard_normal((1, m, 1, oh, oh)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[p] * 4, strides=[stride] * 2, group=group)
    ref_model = model([node], [("x", F, [1, c, hw, hw])], [("y", F, [1, m, oh, oh])], {"w": w[:, :, 0], "b": b})
    want = np.clip(reference(ref_model, {"x": x[:, :, 0]})[0] + res[:, :, 0], 0, 6)
    out = np.empty((1, m, 1, oh, oh), np.float32)
    nn.conv_fused(x, w, b, out, (1, stride, stride), (0, p, p), (1, 1, 1), group, res, nn.ACT_CLIP, 0.0, 6.0, threads)
    np.testing.assert_allclose(out[:, :, 0], want, rtol=1e-4, atol=1e-4)


def _bn_model(with_bias):
    c, m = 4, 6
    inits = {"w": RNG.standard_normal((m, c, 3, 3)).astype(np.float32),
             "s": RNG.uniform(0.5, 2, m).astype(np.float32), "bb": RNG.standard_normal(m).astype(np.float32),
             "mu": RNG.standard_normal(m).astype(np.float32), "var": RNG.uniform(0.5, 2, m).astype(np.float32)}
    conv_in = ["x", "w"]
    if with_bias:
        inits["b"] = RNG.standard_normal(m).astype(np.float32)
        conv_in.append("b")
    nodes = [helper.make_node("Conv", conv_in, ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["y", "s", "bb", "mu", "var"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["z"])]
    return model(nodes, [("x", F, [2, c, 7, 7])], [("z", F, [2, m, 7, 7])], inits)


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_batchnorm_folding(with_bias, tmp_path):
    m = _bn_model(with_bias)
    feeds = {"x": RNG.standard_normal((2, 4, 7, 7)).astype(np.float32)}
    want = reference(m, feeds)[0]
    for fusion in (True, False):
        got = compile(m, cache_dir=str(tmp_path), fusion=fusion).run(feeds)["z"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"fusion={fusion}")
    meta = {k: (v.dtype, v.shape, None) for k, v in feeds.items()}
    assert [n.op for n in to_ir(m, meta).nodes] == ["Conv", "BatchNormalization", "Relu"]
    folded = fold_conv_batchnorm(to_ir(m, meta))      # the pass alone: Conv (new weights) + Relu
    assert [n.op for n in folded.nodes] == ["Conv", "Relu"]


# Depthwise / small-group 3x3 planes (nn._dw): the same-size path (stride 1, pads 1, one input
# channel per group) and the stride-phase path (stride 2, other pads, several channels per group,
# channel multipliers), with every epilogue kind, on small and odd planes.
DW_CASES = [
    # C, group, M, H, W, stride, pads (top, left, bottom, right)
    (6, 6, 6, 7, 7, 1, (1, 1, 1, 1)),
    (5, 5, 5, 1, 9, 1, (1, 1, 1, 1)),
    (4, 4, 8, 5, 2, 1, (1, 1, 1, 1)),      # channel multiplier 2, W = 2
    (6, 6, 6, 9, 8, 2, (1, 1, 1, 1)),
    (6, 6, 6, 8, 9, 2, (0, 1, 1, 0)),
    (4, 4, 4, 10, 7, 2, (2, 0, 0, 2)),
    (8, 4, 4, 6, 5, 1, (0, 2, 1, 0)),      # two input channels per group
    (8, 4, 8, 7, 6, 2, (1, 1, 1, 1)),
    (3, 3, 3, 40, 70, 1, (1, 1, 1, 1)),    # several row blocks
    (3, 3, 3, 41, 70, 2, (1, 1, 1, 1)),
]
DW_ACTS = [(nn.ACT_NONE, 0.0, 0.0, lambda y: y), (nn.ACT_RELU, 0.0, 0.0, lambda y: np.maximum(y, 0)),
           (nn.ACT_CLIP, -0.5, 1.0, lambda y: np.clip(y, -0.5, 1.0)),
           (nn.ACT_HARDSWISH, 0.0, 0.0, lambda y: y * np.clip(y / 6 + 0.5, 0, 1)),
           (nn.ACT_SILU, 0.0, 0.0, lambda y: y / (1 + np.exp(-y)))]


@pytest.mark.parametrize("c,group,m,h,w,stride,pads", DW_CASES)
@pytest.mark.parametrize("act", range(len(DW_ACTS)))
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("entry", ["window3x3", "conv_fused", "conv_dw_serial", "conv_fused64"])
def test_depthwise_planes(c, group, m, h, w, stride, pads, act, residual, entry):
    """Every direct 3x3 path: float32 depthwise convs (one input channel a group) with constant
    filters run window3x3's kernel (the lowering's call); nn's wide paths serve the others, through
    conv_fused (filters not constant), conv_dw_serial (by the float32 callback) and float64."""
    if entry == "window3x3" and c != group:
        pytest.skip("window3x3 runs one input channel a group")
    dtype = np.float64 if entry == "conv_fused64" else np.float32
    code, alpha, beta, fn = DW_ACTS[act]
    x = RNG.standard_normal((1, c, 1, h, w)).astype(dtype)
    wt = RNG.standard_normal((m, c // group, 1, 3, 3)).astype(dtype)
    b = RNG.standard_normal(m).astype(dtype)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=list(pads), strides=[stride] * 2, group=group)
    oh, ow = (h + pads[0] + pads[2] - 3) // stride + 1, (w + pads[1] + pads[3] - 3) // stride + 1
    t = F if dtype == np.float32 else 11   # TensorProto.DOUBLE
    ref_model = model([node], [("x", t, [1, c, h, w])], [("y", t, [1, m, oh, ow])], {"w": wt[:, :, 0], "b": b})
    res = RNG.standard_normal((1, m, 1, oh, ow)).astype(dtype) if residual else np.empty((0,) * 5, dtype)
    y = reference(ref_model, {"x": x[:, :, 0]})[0]
    want = fn(y + res[:, :, 0] if residual else y)
    out = np.full((1, m, 1, oh, ow), np.nan, dtype)
    geometry = ((1, stride, stride), (0, pads[0], pads[1]), (1, 1, 1), group, res, code, alpha, beta)
    if entry == "window3x3":
        window3x3.conv(x, wt, b, out, *geometry)
    elif entry == "conv_dw_serial":
        nn.conv_dw_serial(x, wt, b, out, *geometry)
    else:
        nn.conv_fused(x, wt, b, out, *geometry, 1)
    np.testing.assert_allclose(out[:, :, 0], want, rtol=1e-4, atol=1e-5)


GEMM_ACTS = DW_ACTS + [(nn.ACT_SIGMOID, 0.0, 0.0, lambda y: 1 / (1 + np.exp(-y))),
                       (nn.ACT_HARDSIGMOID, 0.3, 0.4, lambda y: np.clip(0.3 * y + 0.4, 0, 1)),
                       (nn.ACT_LEAKY, 0.1, 0.0, lambda y: np.where(y >= 0, y, 0.1 * y))]


@pytest.mark.parametrize("k,hw", [(1, 7), (1, 40), (3, 34), (3, 6)])
@pytest.mark.parametrize("act", range(len(GEMM_ACTS)))
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_epilogues(k, hw, act, residual, dtype):
    """The GEMM paths' epilogue: short rows (7x7, 6x6) take the bias row by row and the
    activation over the block, long ones (>= nn.EPI_ROW_MIN) both in one pass per row."""
    code, alpha, beta, fn = GEMM_ACTS[act]
    c, m, p = 8, 12, k // 2
    x = RNG.standard_normal((1, c, 1, hw, hw)).astype(dtype)
    wt = RNG.standard_normal((m, c, 1, k, k)).astype(dtype)
    b = RNG.standard_normal(m).astype(dtype)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[p] * 4)
    t = F if dtype == np.float32 else 11   # TensorProto.DOUBLE
    ref_model = model([node], [("x", t, [1, c, hw, hw])], [("y", t, [1, m, hw, hw])], {"w": wt[:, :, 0], "b": b})
    res = RNG.standard_normal((1, m, 1, hw, hw)).astype(dtype) if residual else np.empty((0,) * 5, dtype)
    y = reference(ref_model, {"x": x[:, :, 0]})[0].astype(np.float64)
    want = fn(y + res[:, :, 0] if residual else y)
    out = np.empty((1, m, 1, hw, hw), dtype)
    nn.conv_fused(x, wt, b, out, (1, 1, 1), (0, p, p), (1, 1, 1), 1, res, code, alpha, beta, 1)
    np.testing.assert_allclose(out[:, :, 0], want, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("h,stride", [(14, 1), (14, 2), (7, 1), (28, 2), (57, 2)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_depthwise_plane_ranges_cross_images(h, stride, threads):
    """window3x3.conv_par splits the N*M planes of a float32 depthwise conv into one range a thread:
    with three images and an odd channel count a range starts and ends inside an image."""
    n, c = 3, 97
    x = RNG.standard_normal((n, c, 1, h, h)).astype(np.float32)
    wt = RNG.standard_normal((c, 1, 1, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(c).astype(np.float32)
    oh = (h - 1) // stride + 1
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1] * 4, strides=[stride] * 2, group=c)
    ref_model = model([node], [("x", F, [n, c, h, h])], [("y", F, [n, c, oh, oh])], {"w": wt[:, :, 0], "b": b})
    want = np.clip(reference(ref_model, {"x": x[:, :, 0]})[0], 0, 6)
    out = np.full((n, c, 1, oh, oh), np.nan, np.float32)
    window3x3.conv_par(x, wt, b, out, (1, stride, stride), (0, 1, 1), (1, 1, 1), c, np.empty((0,) * 5, np.float32),
                   nn.ACT_CLIP, 0.0, 6.0, threads)
    np.testing.assert_allclose(out[:, :, 0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("c,m,k,stride,pad,dil,hw", [(3, 8, 7, 2, 3, 1, 64), (4, 6, 3, 1, 1, 1, 33), (4, 6, 3, 2, 2, 2, 70)])
@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("residual", [False, True])
def test_conv_gemm_par_row_bands(c, m, k, stride, pad, dil, hw, parts, residual):
    """conv_gemm_par's row bands (large 2-D outputs): two images, bands
    that do not divide the rows evenly, the padding rows at both ends."""
    n = 2
    x = RNG.standard_normal((n, c, 1, hw, hw)).astype(np.float32)
    wt = RNG.standard_normal((m, c, 1, k, k)).astype(np.float32)
    b = RNG.standard_normal(m).astype(np.float32)
    oh = (hw + 2 * pad - dil * (k - 1) - 1) // stride + 1
    assert nn.rows_split(x.shape, wt.shape, (n, m, 1, oh, oh), (1, stride, stride), (0, pad, pad), 1, parts)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[pad] * 4, strides=[stride] * 2, dilations=[dil] * 2)
    ref_model = model([node], [("x", F, [n, c, hw, hw])], [("y", F, [n, m, oh, oh])], {"w": wt[:, :, 0], "b": b})
    res = RNG.standard_normal((n, m, 1, oh, oh)).astype(np.float32) if residual else np.empty((0,) * 5, np.float32)
    y = reference(ref_model, {"x": x[:, :, 0]})[0]
    want = np.maximum(y + res[:, :, 0] if residual else y, 0)
    out = np.empty((n, m, 1, oh, oh), np.float32)
    nn.conv_gemm_par(x, wt, b, out, (1, stride, stride), (0, pad, pad), (1, dil, dil), 1, res, nn.ACT_RELU, 0.0, 0.0, parts)
    np.testing.assert_allclose(out[:, :, 0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,pads,residual", [(1, 0, False), (2, 0, True), (1, 1, False)])
def test_squeeze_excite_convs_as_gemv(n, pads, residual, tmp_path):
    """1x1 convs of one input and output position (squeeze-excite: pool, reduce with SiLU,
    expand with Sigmoid, scale) run nn.conv_gemv; with pads the output has more positions
    and they do not. Fused and unfused against the reference."""
    c, r, hw = 24, 8, 5
    inits = {"w1": RNG.standard_normal((r, c, 1, 1)).astype(np.float32), "b1": RNG.standard_normal(r).astype(np.float32),
             "w2": RNG.standard_normal((c, r, 1, 1)).astype(np.float32), "b2": RNG.standard_normal(c).astype(np.float32)}
    q = 1 + 2 * pads
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["s"]),
             helper.make_node("Conv", ["s", "w1", "b1"], ["a"], pads=[pads] * 4),
             helper.make_node("Sigmoid", ["a"], ["g"]), helper.make_node("Mul", ["a", "g"], ["h"]),
             helper.make_node("Conv", ["h", "w2", "b2"], ["e0"])]
    inputs = [("x", F, [n, c, hw, hw])]
    if residual:
        inputs.append(("r", F, [n, c, q, q]))
        nodes.append(helper.make_node("Add", ["e0", "r"], ["e"]))
    else:
        nodes[-1].output[0] = "e"
    nodes.append(helper.make_node("Sigmoid", ["e"], ["z"]))
    m = model(nodes, inputs, [("z", F, [n, c, q, q])], inits)
    feeds = {"x": RNG.standard_normal((n, c, hw, hw)).astype(np.float32)}
    if residual:
        feeds["r"] = RNG.standard_normal((n, c, q, q)).astype(np.float32)
    want = reference(m, feeds)[0]
    for fusion in (True, False):
        fn = compile(m, cache_dir=str(tmp_path / str(fusion)), fusion=fusion)
        np.testing.assert_allclose(fn(**feeds), want, rtol=1e-4, atol=1e-5)
        src = "".join(open(p).read() for p in (tmp_path / str(fusion)).glob("**/onnxjit_g_*.py"))
        assert (src.count("conv_gemv(") == 2) == (pads == 0), src
