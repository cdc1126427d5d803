"""Convs on kernels/conv_small.py (tiles of an output row's positions by two vectors of output
channels, transposed in registers): compiled models against onnx.reference at one and two
threads, with the fused epilogues it applies (bias, residual Add, Relu, Clip, HardSwish, SiLU),
stride 2, pads, ragged tiles and a last panel of one vector. Run for the host's vectors; the
AVX2 build (8 floats, tiles of 7 positions) by NUMBA_CPU_NAME / NUMBA_CPU_FEATURES on an
AVX-512 machine too."""
import numpy as np
import pytest
from onnx import helper

from compiler import compile
from targets.cpu.kernels import sgemm

from .helpers import dense_conv_model, reference

RNG = np.random.default_rng(11)

# (N, C, H, W, M, kernel, stride, pads (top, left, bottom, right), epilogue)
CASES = {
    "pointwise_7x7_clip": (1, 40, 7, 7, 64, 1, 1, (0, 0, 0, 0), "clip"),
    "pointwise_14x14_res": (2, 32, 14, 14, 48, 1, 1, (0, 0, 0, 0), "res"),      # panels 32 + 16; rows of 2 x 7
    "3x3_pad_relu_16wide": (1, 16, 16, 16, 32, 3, 1, (1, 1, 1, 1), "res_relu"),  # tiles of 8
    "3x3_stride2_uneven": (1, 24, 19, 21, 80, 3, 2, (0, 1, 2, 1), "hardswish"),  # 10-wide rows: tiles of 5
    "5x5_stride2_9wide": (2, 17, 18, 17, 16, 5, 2, (2, 2, 2, 2), "none"),        # rows of 9: tiles of 5 and 4
    "1x1_stride2": (1, 64, 28, 28, 32, 1, 2, (0, 0, 0, 0), "relu"),
    "pointwise_silu": (1, 64, 14, 14, 64, 1, 1, (0, 0, 0, 0), "silu"),
    "3x3_silu_16wide": (1, 16, 8, 16, 32, 3, 1, (1, 1, 1, 1), "silu"),
    "stem_7x7_stride2": (1, 3, 30, 30, 32, 7, 2, (3, 3, 3, 3), "relu"),          # 3 input channels, 147 steps
    # with AVX2, tiles across rows (conv_small.tiling): 7x7 as tiles of 5, 5 rows of 7 as 7 tiles of 5
    "3x3_7x7_res_relu": (1, 32, 7, 7, 32, 3, 1, (1, 1, 1, 1), "res_relu"),
    "3x3_stride2_to_7x7_clip": (2, 16, 14, 14, 48, 3, 2, (1, 1, 1, 1), "clip"),
    "3x3_5x7_none": (1, 24, 5, 7, 16, 3, 1, (1, 1, 1, 1), "none"),
    # rows of 9 across rows on both widths: 7x9 as tiles of 7 (AVX-512) or 4 (AVX2), 6x9 as 7
    # tiles of 8 (AVX-512: the last two positions clamped) or 9 of 6; a tile's positions wrap
    "3x3_7x9_res_relu": (1, 24, 7, 9, 32, 3, 1, (1, 1, 1, 1), "res_relu"),
    "3x3_6x9_two_images": (2, 16, 6, 9, 32, 3, 1, (1, 1, 1, 1), "clip"),
    # with AVX-512, rows of 28 as two tiles of 14 (conv_small.WIDE), panels of 32 and 16
    "3x3_28wide_hardswish": (1, 16, 12, 28, 48, 3, 1, (1, 1, 1, 1), "hardswish"),
    "pointwise_28wide_silu": (2, 64, 3, 28, 32, 1, 1, (0, 0, 0, 0), "silu"),
    "3x3_56wide_res": (1, 24, 4, 56, 32, 3, 1, (1, 1, 1, 1), "res"),      # 24 channels: not Winograd's
}
if sgemm.W == 8:    # panels of 16 and a last one of 8; rows of 8 as two tiles of 4
    CASES["3x3_8wide_40ch"] = (1, 40, 8, 8, 40, 3, 1, (1, 1, 1, 1), "res_relu")


def _expected_call(case):
    """The kernel the case's conv runs on: with AVX2, a pointwise conv of stride 1 stays on
    kernels/pointwise.py's GEMM (faster there; lower_nn.SMALL_MIN_K's notes)."""
    _, _, _, _, _, k, stride, pads, _ = case
    return "L_pointwise.conv" if sgemm.W == 8 and k == 1 and stride == 1 and not any(pads) else "L_conv_small.conv"


def _model(*case):
    return dense_conv_model(*case, RNG)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_small_matches_reference(name, threads, tmp_path):
    m, ins = _model(*CASES[name])
    feeds = {k: RNG.standard_normal(shape).astype(np.float32) for k, _, shape in ins}
    got = compile(m, cache_dir=str(tmp_path), threads=threads).run(feeds)["z"]
    np.testing.assert_allclose(got, reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
    src = "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))
    assert _expected_call(CASES[name]) in src, src


def test_few_multiply_adds_or_ragged_channels_elsewhere(tmp_path):
    """Under 32 multiply-adds an output (a 3x3 stem: conv_lanes), or with output channels no
    multiple of the vector width (a pointwise one: kernels/pointwise.py), not conv_small."""
    a, b = _model(1, 3, 20, 20, 32, 3, 2, (1, 1, 1, 1), "relu"), _model(1, 32, 9, 9, 20, 1, 1, (0, 0, 0, 0), "none")
    for (m, ins), d, path in ((a, tmp_path / "a", "L_conv_lanes.conv("), (b, tmp_path / "b", "L_pointwise.conv(")):
        feeds = {k: RNG.standard_normal(shape).astype(np.float32) for k, _, shape in ins}
        np.testing.assert_allclose(compile(m, cache_dir=str(d)).run(feeds)["z"], reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
        src = "".join(open(p).read() for p in d.glob("**/onnxjit_g_*.py"))
        assert "conv_small" not in src and path in src, src


@pytest.mark.parametrize("rows_first", [0, 1])
@pytest.mark.parametrize("hw", [(9, 11), (7, 7)])     # 7x7: with AVX2 tiles across rows, an item an image
def test_conv_par_splits_by_rows_or_panels(rows_first, hw):
    """conv_par's two splits (output rows first, or channel panels first) over 3 ranges cover every
    output once: equal to the one-thread conv, whose order is the panels'."""
    from targets.cpu.kernels import conv_small
    x = RNG.standard_normal((2, 24, 1, *hw)).astype(np.float32)
    w = RNG.standard_normal((48, 24, 1, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(48).astype(np.float32)
    wp = conv_small.pack(w)
    res = RNG.standard_normal((2, 48, 1, *hw)).astype(np.float32)
    geo = ((1, 1, 1), (0, 1, 1), (3, 3), res, 1, 0.0, 0.0)
    want, got = np.empty_like(res), np.full_like(res, np.nan)
    conv_small.conv(x, wp, b, want, *geo)
    conv_small.conv_par(x, wp, b, got, *geo, 3, rows_first)
    np.testing.assert_array_equal(got, want)
