"""Winograd F(2x2, 3x3) convolutions. float64: targets/cpu/kernels/nn.py's conv_winograd, picked
by use_winograd: constant filters are transformed at compile time (lower_nn.py), others per
call inside conv_fused. float32: kernels/winograd.py (LLVM-IR transforms, the GEMMs on
sgemm.py's kernel), picked by lower_nn._winograd32 for constant filters. Oracle: onnx.reference."""
import inspect

import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile
from targets.cpu import lower_nn
from targets.cpu.kernels import nn

from .helpers import F, model, reference

D = TensorProto.DOUBLE
RNG = np.random.default_rng(11)


def _out_hw(h, w, pads):
    return h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2


def _conv_model(n, c, m, h, w, pads, act=None, residual=False, elem=F, weights_as_input=False):
    """x -> Conv(3x3, pads) [-> Add residual] [-> act] -> z; the filters an initializer or an input.

    Filters scaled by 1/sqrt(9c), as trained ones are, keep the outputs near unit size, where
    rtol 1e-4 / atol 1e-5 measures float32 rounding rather than cancellation in large sums."""
    dt = np.float32 if elem == F else np.float64
    oh, ow = _out_hw(h, w, pads)
    inits = {"b": RNG.standard_normal(m).astype(dt)}
    inputs = [("x", elem, [n, c, h, w])]
    if weights_as_input:
        inputs.append(("w", elem, [m, c, 3, 3]))
    else:
        inits["w"] = (RNG.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(dt)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y0"], pads=list(pads))]
    last = "y0"
    if residual:
        inputs.append(("r", elem, [n, m, oh, ow]))
        nodes.append(helper.make_node("Add", [last, "r"], ["y1"]))
        last = "y1"
    if act is not None:
        op, attrs = act
        nodes.append(helper.make_node(op, [last], ["z"], **attrs))
    else:
        nodes.append(helper.make_node("Identity", [last], ["z"]))
    return model(nodes, inputs, [("z", elem, [n, m, oh, ow])], inits)


def _feeds(m):
    feeds = {}
    for i in m.graph.input:
        t = i.type.tensor_type
        dt = np.float32 if t.elem_type == F else np.float64
        scale = 1 / np.sqrt(9 * m.graph.input[0].type.tensor_type.shape.dim[1].dim_value) if i.name == "w" else 1
        feeds[i.name] = (RNG.standard_normal([d.dim_value for d in t.shape.dim]) * scale).astype(dt)
    return feeds


def _graph_source(fn, feeds):
    """The generated graph function's source, to see which kernel it calls."""
    cm = fn if hasattr(fn, "specialisation") else fn._model
    graph = cm.specialisation(feeds)[0]
    return inspect.getsource(getattr(graph, "py_func", graph))


def _takes_winograd(n, c, m, h, w, pads, pretransformed=True, itemsize=8):
    oh, ow = _out_hw(h, w, pads)
    return nn.use_winograd((n, c, 1, h, w), (m, c, 1, 3, 3), (n, m, 1, oh, ow), (1, 1, 1), (0, pads[0], pads[1]),
                           (1, 1, 1), 1, pretransformed, itemsize)


# (N, C, M, H, W, pads (top, left, bottom, right), activation, residual)
CASES = {
    "even_pad1_relu_residual": (2, 32, 40, 12, 12, (1, 1, 1, 1), ("Relu", {}), True),
    "odd_pad1": (2, 40, 32, 11, 13, (1, 1, 1, 1), None, False),
    "odd_pad0_leaky": (1, 32, 48, 15, 13, (0, 0, 0, 0), ("LeakyRelu", {"alpha": 0.1}), False),
    "even_pad0_residual": (2, 48, 32, 14, 10, (0, 0, 0, 0), None, True),
    "uneven_pads_sigmoid": (1, 32, 32, 13, 14, (1, 0, 0, 1), ("Sigmoid", {}), False),
    "hardsigmoid_residual": (2, 32, 36, 9, 9, (1, 1, 1, 1), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), True),
    "hardswish": (1, 36, 32, 14, 13, (1, 1, 1, 1), ("HardSwish", {}), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_winograd_matches_reference(name, tmp_path):
    n, c, m, h, w, pads, act, residual = CASES[name]
    assert _takes_winograd(n, c, m, h, w, pads)
    mod = _conv_model(n, c, m, h, w, pads, act, residual, elem=D)
    feeds = _feeds(mod)
    want = reference(mod, feeds)[0]
    fn = compile(mod, cache_dir=str(tmp_path))
    np.testing.assert_allclose(fn.run(feeds)["z"], want, rtol=1e-4, atol=1e-5)
    assert "conv_winograd" in _graph_source(fn, feeds)


def test_clip_epilogue_and_float64(tmp_path):
    n, c, m, h, w, pads = 1, 32, 32, 12, 12, (1, 1, 1, 1)
    oh, ow = _out_hw(h, w, pads)
    D = TensorProto.DOUBLE
    inits = {"w": RNG.standard_normal((m, c, 3, 3)), "b": RNG.standard_normal(m),
             "lo": np.float64(-0.5), "hi": np.float64(2.0)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=list(pads)),
             helper.make_node("Clip", ["y", "lo", "hi"], ["z"])]
    mod = model(nodes, [("x", D, [n, c, h, w])], [("z", D, [n, m, oh, ow])], inits)
    feeds = _feeds(mod)
    fn = compile(mod, cache_dir=str(tmp_path))
    np.testing.assert_allclose(fn.run(feeds)["z"], reference(mod, feeds)[0], rtol=1e-10, atol=1e-10)
    assert "conv_winograd" in _graph_source(fn, feeds)


def test_filters_as_input_transform_per_call(tmp_path):
    """Filters that are not constants: conv_fused transforms them on each call."""
    n, c, m, h, w, pads = 2, 32, 32, 17, 16, (1, 1, 1, 1)
    assert _takes_winograd(n, c, m, h, w, pads, pretransformed=False)
    mod = _conv_model(n, c, m, h, w, pads, ("Relu", {}), True, elem=D, weights_as_input=True)
    feeds = _feeds(mod)
    fn = compile(mod, cache_dir=str(tmp_path))
    np.testing.assert_allclose(fn.run(feeds)["z"], reference(mod, feeds)[0], rtol=1e-4, atol=1e-5)
    assert "conv_fused" in _graph_source(fn, feeds)


def test_choice():
    """Winograd only for 2-D 3x3 stride-1 dilation-1 ungrouped convs with enough channels and 2x2 output
    tiles (more of them when the filters are transformed on each call)."""
    assert _takes_winograd(1, 32, 32, 56, 56, (1, 1, 1, 1))
    assert not _takes_winograd(1, 32, 32, 56, 56, (1, 1, 1, 1), itemsize=4)   # float32: the im2col GEMM
    assert _takes_winograd(1, 128, 128, 14, 14, (1, 1, 1, 1))
    assert _takes_winograd(4, 256, 256, 7, 7, (1, 1, 1, 1))
    assert not _takes_winograd(1, 4, 4, 56, 56, (1, 1, 1, 1))        # too few channels
    assert not _takes_winograd(1, 256, 256, 7, 7, (1, 1, 1, 1))      # too few tiles for the filters' traffic
    assert not _takes_winograd(1, 64, 64, 14, 14, (1, 1, 1, 1), pretransformed=False)
    shape = ((1, 32, 1, 16, 16), (32, 32, 1, 3, 3), (1, 32, 1, 16, 16))
    assert not nn.use_winograd(*shape, (1, 1, 1), (0, 1, 1), (1, 1, 1), 2, True, 8)      # grouped
    assert not nn.use_winograd(*shape, (1, 1, 1), (0, 1, 1), (1, 1, 2), 1, True, 8)      # dilated
    assert not nn.use_winograd((1, 32, 1, 16, 16), (32, 32, 1, 3, 3), (1, 32, 1, 8, 8),
                               (1, 2, 2), (0, 1, 1), (1, 1, 1), 1, True, 8)              # strided
    assert not nn.use_winograd((1, 32, 1, 16, 16), (32, 32, 1, 5, 5), (1, 32, 1, 16, 16),
                               (1, 1, 1), (0, 2, 2), (1, 1, 1), 1, True, 8)              # 5x5


def test_cuda_lowering_keeps_conv_fused():
    """The CUDA target reuses the CPU Conv lowering with its own nn library, which has no Winograd."""
    import targets.cpu as cpu_target
    import targets.cuda as cuda_target
    from compiler.driver import lower_to_ir
    mod = _conv_model(1, 32, 32, 16, 16, (1, 1, 1, 1), elem=D)
    meta = {"x": (np.dtype(np.float64), (1, 32, 16, 16), None)}
    calls = {t.NAME: [ln for ln in t.build(lower_to_ir(mod, meta), {})["source"].splitlines() if "L_nn." in ln]
             for t in (cpu_target, cuda_target)}
    assert "conv_winograd" in calls["cpu"][0] and "conv_fused" in calls["cuda"][0], calls


# float32 (kernels/winograd.py): (N, C, M, H, W, pads, activation, residual). 64 channels at 40x40
# is 400 tiles in two blocks (winograd.block_tiles), the second starting inside a tile row; so is
# 128 -> 96 channels at 30x30 (225 tiles; conv_par's output chunks of 12 channels at 2 threads).
CASES32 = {
    "two_images_residual": (2, 32, 32, 34, 34, (1, 1, 1, 1), ("Relu", {}), True),
    "channels_two_blocks": (1, 128, 96, 30, 30, (1, 1, 1, 1), None, False),
    "relu_residual_two_images": (2, 32, 40, 14, 14, (1, 1, 1, 1), ("Relu", {}), True),
    "odd_sizes": (1, 40, 32, 15, 17, (1, 1, 1, 1), None, False),
    "pad0_hardswish": (1, 32, 48, 16, 19, (0, 0, 0, 0), ("HardSwish", {}), False),
    "uneven_pads_residual": (1, 32, 32, 15, 16, (1, 0, 0, 1), None, True),
    "two_blocks_relu": (1, 64, 64, 40, 40, (1, 1, 1, 1), ("Relu", {}), False),
}


@pytest.fixture
def wino32(monkeypatch):
    """kernels/winograd.py taken on any CPU (lower_nn.WINO32: not on Intel's AVX-512 cores)."""
    monkeypatch.setattr(lower_nn, "WINO32", True)


@pytest.mark.parametrize("name", sorted(CASES32))
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd32_matches_reference(name, threads, tmp_path, wino32):
    n, c, m, h, w, pads, act, residual = CASES32[name]
    mod = _conv_model(n, c, m, h, w, pads, act, residual)
    feeds = _feeds(mod)
    want = reference(mod, feeds)[0]
    fn = compile(mod, cache_dir=str(tmp_path), threads=threads)
    np.testing.assert_allclose(fn.run(feeds)["z"], want, rtol=1e-4, atol=1e-5)
    src = _graph_source(fn, feeds)
    assert "L_winograd.conv" in src and ("conv_par" in src) == (threads == 2), src


def test_winograd32_clip_and_workspace_in_the_arena(tmp_path, wino32):
    """Clip in the output transform's registers; the scratch (V and M) a slice of the arena."""
    n, c, m, h, w, pads = 1, 32, 32, 28, 28, (1, 1, 1, 1)
    oh, ow = _out_hw(h, w, pads)
    inits = {"w": (RNG.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32),
             "b": RNG.standard_normal(m).astype(np.float32), "lo": np.float32(-0.5), "hi": np.float32(0.75)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=list(pads)),
             helper.make_node("Clip", ["y", "lo", "hi"], ["z"])]
    mod = model(nodes, [("x", F, [n, c, h, w])], [("z", F, [n, m, oh, ow])], inits)
    feeds = _feeds(mod)
    fn = compile(mod, cache_dir=str(tmp_path), threads=1)
    np.testing.assert_allclose(fn.run(feeds)["z"], reference(mod, feeds)[0], rtol=1e-4, atol=1e-5)
    src = _graph_source(fn, feeds)
    assert "L_winograd.conv(" in src and "arena_float32[" in src, src


def test_winograd32_left_to_conv_small_where_it_does_not_pay(tmp_path, monkeypatch):
    """Where lower_nn.WINO32 is off (Intel's AVX-512 cores), a conv Winograd would take runs on
    conv_small's tiles, with its residual and Relu."""
    monkeypatch.setattr(lower_nn, "WINO32", False)
    mod = _conv_model(1, 32, 32, 16, 16, (1, 1, 1, 1), ("Relu", {}), True)
    feeds = _feeds(mod)
    fn = compile(mod, cache_dir=str(tmp_path), threads=1)
    np.testing.assert_allclose(fn.run(feeds)["z"], reference(mod, feeds)[0], rtol=1e-4, atol=1e-5)
    src = _graph_source(fn, feeds)
    assert "L_winograd" not in src and "L_conv_small.conv(" in src, src


@pytest.mark.parametrize("case", ["sigmoid", "7x7", "few_channels", "strided"])
def test_winograd32_choice(case, tmp_path, wino32):
    """Not taken for an activation its epilogue does not apply (the conv GEMM fuses it), 7x7
    outputs (16 tiles), fewer than 32 channels or a stride; each still matches the reference."""
    n, c, m, h, w, pads, act, strides = 1, 32, 32, 14, 14, (1, 1, 1, 1), None, [1, 1]
    if case == "sigmoid":
        act = ("Sigmoid", {})
    elif case == "7x7":
        h = w = 7
    elif case == "few_channels":
        c = 16
    mod = _conv_model(n, c, m, h, w, pads, act)
    if case == "strided":
        mod.graph.node[0].attribute.append(helper.make_attribute("strides", [2, 2]))
        mod.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 7
        mod.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 7
    feeds = _feeds(mod)
    fn = compile(mod, cache_dir=str(tmp_path), threads=1)
    np.testing.assert_allclose(fn.run(feeds)["z"], reference(mod, feeds)[0], rtol=1e-4, atol=1e-5)
    assert "L_winograd" not in _graph_source(fn, feeds)
