"""MaxPool on kernels/window3x3.py (float32, 2-D 3x3, strides 1 or 2, no Indices): compiled
models against onnx.reference at one and two threads. With NaNs the engines disagree
(onnx.reference skips them, onnxruntime and nn.max_pool do not, differently), so there the
oracle is nn.max_pool's rule, which the kernel keeps: a window's first tap inside the plane
is taken as it is, a later one only if strictly greater. The depthwise convolutions on the
same kernel are checked in test_conv_fusion.py."""
import numpy as np
import pytest
from onnx import helper

from compiler import compile
from targets.cpu.kernels import nn

from .helpers import F, model, reference

RNG = np.random.default_rng(5)

# (N, C, H, W, strides, pads (top, left, bottom, right), ceil_mode)
CASES = {
    "resnet_stem": (1, 8, 30, 30, 2, (1, 1, 1, 1), 0),
    "stride1_same": (2, 3, 17, 20, 1, (1, 1, 1, 1), 0),
    "no_pads_odd": (1, 5, 9, 35, 2, (0, 0, 0, 0), 0),
    "uneven_pads_ceil": (1, 4, 10, 13, 2, (0, 2, 1, 0), 1),
    "tiny": (1, 2, 2, 3, 1, (1, 1, 1, 1), 0),
}


def _pool_model(n, c, h, w, s, pads, ceil):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[s, s], pads=list(pads),
                            ceil_mode=ceil)
    size = [(d + a + b - 3 + (s - 1) * ceil) // s + 1 for d, a, b in ((h, pads[0], pads[2]), (w, pads[1], pads[3]))]
    return model([node], [("x", F, [n, c, h, w])], [("y", F, [n, c, *size])], opset=17)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_max_pool_matches_reference(name, threads, tmp_path):
    n, c, h, w, s, pads, ceil = CASES[name]
    m = _pool_model(n, c, h, w, s, pads, ceil)
    x = RNG.standard_normal((n, c, h, w)).astype(np.float32)
    fn = compile(m, cache_dir=str(tmp_path), threads=threads)
    np.testing.assert_array_equal(fn(x), reference(m, {"x": x})[0])
    src = "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))
    assert "L_maxpool3x3.max_pool" in src, src
    x[RNG.random(x.shape) < 0.05] = np.nan
    y = fn(x)
    want = np.empty((n, c, 1) + y.shape[2:], np.float32)
    nn.max_pool(x[:, :, None], want, np.empty((0,) * 5, np.int64), (1, 3, 3), (1, s, s), (0, pads[0], pads[1]), (1, 1, 1), 0)
    np.testing.assert_array_equal(y, want[:, :, 0])


def test_indices_and_other_kernels_keep_nn_max_pool(tmp_path):
    """With the Indices output, or a 2x2 kernel, MaxPool stays on nn.max_pool."""
    x = RNG.standard_normal((1, 3, 9, 9)).astype(np.float32)
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("MaxPool", ["x"], ["z"], kernel_shape=[2, 2])]
    m = model(nodes, [("x", F, [1, 3, 9, 9])], [("y", F, [1, 3, 4, 4]), ("i", 7, [1, 3, 4, 4]), ("z", F, [1, 3, 8, 8])],
              opset=17)
    want = reference(m, {"x": x})
    got = compile(m, cache_dir=str(tmp_path))(x)
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)
    src = "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))
    assert "L_maxpool3x3" not in src and src.count("L_nn.max_pool(") == 2, src


def test_cuda_lowering_keeps_its_max_pool():
    """The CUDA target reuses the CPU pooling lowering with its own nn library: window3x3 is the
    CPU's alone (without this check the CUDA build refused the pool as an unknown library)."""
    import targets.cpu as cpu_target
    import targets.cuda as cuda_target
    from compiler.driver import lower_to_ir
    m = _pool_model(1, 4, 12, 12, 2, (1, 1, 1, 1), 0)
    meta = {"x": (np.dtype(np.float32), (1, 4, 12, 12), None)}
    src = {t.NAME: t.build(lower_to_ir(m, meta), {})["source"] for t in (cpu_target, cuda_target)}
    assert "L_maxpool3x3.max_pool(" in src["cpu"] and "L_nn.max_pool(" in src["cuda"], src
