"""Depthwise 3x3 convs of small planes on kernels/dw_small.py (a vector of channels in the lanes,
rows transposed in registers): compiled models against onnx.reference at one and two threads,
with the epilogues it applies (bias, residual Add, Relu, Clip, HardSwish), strides 1 and 2, pads
of 0 and 1, uneven planes and several images; wider planes or channels not in vectors keep
window3x3. Run for the host's vectors; the AVX2 build (8 channels a group, 8 outputs at a time)
by NUMBA_CPU_NAME / NUMBA_CPU_FEATURES on an AVX-512 machine too."""
import numpy as np
import pytest
from onnx import helper

from compiler import compile
from targets.cpu.kernels import sgemm

from .helpers import F, conv_epilogue_model, reference

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
if sgemm.W == 8:    # groups of 8 channels; with AVX2 wide planes too
    CASES["24ch_9x9_hardswish"] = (1, 24, 9, 9, 1, (1, 1, 1, 1), "hardswish")    # three groups; 9 columns: two chunks
    CASES["112wide_stride2_res"] = (1, 16, 12, 112, 2, (1, 1, 1, 1), "res_relu")
    CASES["56wide_clip"] = (1, 8, 6, 56, 1, (1, 1, 1, 1), "clip")


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


WIDE = [((1, 16, 20, 40), 1), ((1, 16, 9, 70), 2)]    # wider than 32 (64 at stride 2)


@pytest.mark.parametrize("shape,stride", [((1, 20, 7, 7), 1), ((1, 16, 9, 140), 2)] + (WIDE if sgemm.W == 16 else []))
def test_other_planes_keep_window3x3(shape, stride, tmp_path):
    """Channels not in vectors, or planes wider than dw_small's 128 columns; with AVX-512 also
    planes wider than 32 (64 at stride 2): window3x3.py."""
    src = _run(*_model(*shape, stride, (1, 1, 1, 1), "relu"), tmp_path)
    assert "L_window3x3.conv" in src and "dw_small" not in src, src
