"""Depthwise 3x3 convs of small planes on kernels/dw_small.py (16 channels in the lanes, rows
transposed in registers): compiled models against onnx.reference at one and two threads, with
the epilogues it applies (bias, residual Add, Relu, Clip, HardSwish), strides 1 and 2, pads of 0
and 1, uneven planes and several images; wider planes or channels not in 16s keep window3x3."""
import numpy as np
import pytest
from onnx import helper

from compiler import compile
from targets.cpu.kernels import sgemm

from .helpers import F, conv_epilogue_model, reference

pytestmark = pytest.mark.skipif(sgemm.W != 16, reason="dw_small is written for AVX-512's 16-float vectors")
RNG = np.random.default_rng(12)

# (N, C, H, W, stride, pads (top, left, bottom, right), epilogue)
CASES = {
    "7x7_clip": (1, 48, 7, 7, 1, (1, 1, 1, 1), "clip"),
    "14x14_stride2_hardswish": (1, 32, 14, 14, 2, (1, 1, 1, 1), "hardswish"),
    "16wide_res_relu": (2, 16, 9, 16, 1, (1, 1, 1, 1), "res_relu"),     # 16 output columns: two halves
    "no_pads_uneven": (1, 32, 11, 13, 1, (0, 0, 0, 0), "none"),
    "stride2_pads_uneven": (1, 16, 10, 15, 2, (0, 1, 1, 0), "relu"),
    "stride2_no_pads_16": (2, 32, 16, 16, 2, (0, 0, 0, 0), "res"),
    "30wide_two_chunks_res": (1, 32, 9, 30, 1, (1, 1, 1, 1), "res_relu"),    # input in two blocks of 16
    "28x28_stride2_clip": (1, 16, 28, 28, 2, (1, 1, 1, 1), "clip"),
    "stride2_57wide_res": (1, 16, 12, 57, 2, (1, 1, 1, 1), "res"),   # four input blocks, two output chunks
}


def _model(n, c, h, w, s, pads, epi):
    oh = (h + pads[0] + pads[2] - 3) // s + 1
    ow = (w + pads[1] + pads[3] - 3) // s + 1
    inits = {"w": RNG.standard_normal((c, 1, 3, 3)).astype(np.float32), "b": RNG.standard_normal(c).astype(np.float32)}
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[s, s], pads=list(pads), group=c)
    return conv_epilogue_model(conv, [("x", F, [n, c, h, w])], inits, (n, c, oh, ow), epi)


def _run(m, ins, tmp_path, threads=1):
    feeds = {k: RNG.standard_normal(shape).astype(np.float32) for k, _, shape in ins}
    got = compile(m, cache_dir=str(tmp_path), threads=threads).run(feeds)["z"]
    np.testing.assert_allclose(got, reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
    return "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_dw_small_matches_reference(name, threads, tmp_path):
    src = _run(*_model(*CASES[name]), tmp_path, threads)
    assert "L_dw_small.conv" in src, src


@pytest.mark.parametrize("shape,stride", [((1, 24, 7, 7), 1), ((1, 16, 20, 40), 1), ((1, 16, 9, 70), 2)])
def test_other_planes_keep_window3x3(shape, stride, tmp_path):
    """Channels not in 16s, or planes wider than 32 (64 at stride 2): window3x3.py."""
    src = _run(*_model(*shape, stride, (1, 1, 1, 1), "relu"), tmp_path)
    assert "L_window3x3.conv" in src and "dw_small" not in src, src
