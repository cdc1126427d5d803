"""Per-channel input scales folded into a conv's filters (targets/cpu/conv_input_scale.py): a
squeeze-excite block's x * s feeding a pointwise conv on kernels/conv_small.py runs as the conv of
x with its filters scaled at run time. Compiled models against onnx.reference at one and two
threads, the pass alone on the IR, and the shapes it must leave alone."""
import numpy as np
import pytest
from onnx import helper

from compiler import compile
from compiler.driver import lower_to_ir
from targets.cpu.conv_input_scale import fold_input_scales
from targets.cpu.kernels import sgemm

from .helpers import F, model, reference

pytestmark = pytest.mark.skipif(sgemm.W != 16, reason="with AVX2 the pointwise convs after a squeeze-excite run on the GEMM, not conv_small")
RNG = np.random.default_rng(21)


def _se_model(c, h, m, scale_shape=None, extra_use=False, act="Relu"):
    """x (1, c, h, h) -> squeeze-excite gate s (1, c, 1, 1) -> z = conv1x1(x * s) (+ act), m outputs;
    scale_shape: a gate of another shape (broadcast another way); extra_use: x * s is an output too."""
    inits = {"w1": RNG.standard_normal((8, c, 1, 1)).astype(np.float32),
             "w2": RNG.standard_normal((c, 8, 1, 1)).astype(np.float32),
             "b2": RNG.standard_normal(c).astype(np.float32),
             "wp": RNG.standard_normal((m, c, 1, 1)).astype(np.float32),
             "bp": RNG.standard_normal(m).astype(np.float32)}
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Conv", ["g", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["h2"]), helper.make_node("Sigmoid", ["h2"], ["s"])]
    gate = "s"
    if scale_shape is not None:
        inits["shape"] = np.array(scale_shape, np.int64)
        nodes.append(helper.make_node("Reshape", ["s", "shape"], ["s2"]))
        gate = "s2"
    nodes += [helper.make_node("Mul", ["x", gate], ["xs"]), helper.make_node("Conv", ["xs", "wp", "bp"], ["y"])]
    outs = [("z", F, [1, m, h, h])]
    if act:
        nodes.append(helper.make_node(act, ["y"], ["z"]))
    else:
        nodes[-1] = helper.make_node("Conv", ["xs", "wp", "bp"], ["z"])
    if extra_use:
        outs.append(("xs", F, [1, c, h, h]))
    return model(nodes, [("x", F, [1, c, h, h])], outs, inits)


def _run(m, c, h, tmp_path, threads=1):
    x = RNG.standard_normal((1, c, h, h)).astype(np.float32)
    got = compile(m, cache_dir=str(tmp_path), threads=threads).run({"x": x})
    for name, want in zip(got, reference(m, {"x": x})):
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-4)
    return "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))


@pytest.mark.parametrize("c,h,m,act", [(32, 14, 16, "Relu"), (64, 28, 48, None), (48, 7, 32, "Relu")])
@pytest.mark.parametrize("threads", [1, 2])
def test_scale_folds_into_conv_small_filters(c, h, m, act, threads, tmp_path):
    src = _run(_se_model(c, h, m, act=act), c, h, tmp_path, threads)
    assert "scale_panels" in src and "L_conv_small.conv" in src, src


@pytest.mark.parametrize("kwargs,why", [
    (dict(c=64, h=7, m=64), "more output channels than positions: the feature map is the cheaper side"),
    (dict(c=32, h=14, m=16, scale_shape=[1, 32, 1, 1], extra_use=True), "x * s is read elsewhere too"),
    (dict(c=32, h=14, m=16, act="Sigmoid"), "Sigmoid stays after the conv: not conv_small's epilogue"),
])
def test_other_shapes_and_uses_keep_the_multiply(kwargs, why, tmp_path):
    c, h = kwargs["c"], kwargs["h"]
    src = _run(_se_model(**kwargs), c, h, tmp_path)
    assert "scale_panels" not in src, why


def test_pass_alone_replaces_the_mul():
    g = lower_to_ir(_se_model(32, 14, 16), {"x": (np.dtype(np.float32), (1, 32, 14, 14), None)})
    folded = fold_input_scales(g)
    ops = [n.op for n in folded.nodes]
    assert "Mul" in [n.op for n in g.nodes] and "Mul" not in ops
    conv = [n for n in folded.nodes if n.op == "Conv"][-1]
    assert conv.attrs.get("_in_scale") == 1 and len(conv.inputs) == 5
    assert conv.inputs[0] is g.inputs[0] and conv.inputs[4].shape == (1, 32, 1, 1)
