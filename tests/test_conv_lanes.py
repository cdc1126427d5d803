"""Convs on kernels/conv_lanes.py (a vector of positions of an output row in the lanes by 16
output channels, with AVX2 8 by 8: stems, too few multiply-adds an output for conv_small):
compiled models against onnx.reference at one and two threads, with the fused epilogues it
applies (bias, residual Add, Relu, Clip, HardSwish, SiLU), stride 1 and 2, pads on any side,
tiles cut by the image's border or its width, several panels of channels and images. Run for
the host's vectors; the AVX2 build by bench/avx2_env.py on an AVX-512 machine too."""
import numpy as np
import pytest

from compiler import compile
from targets.cpu.kernels import sgemm

from .helpers import dense_conv_model, reference

RNG = np.random.default_rng(12)

# (N, C, H, W, M, kernel, stride, pads (top, left, bottom, right), epilogue)
CASES = {
    "stem_3x3_stride2_relu": (1, 3, 40, 40, 16, 3, 2, (1, 1, 1, 1), "clip"),       # 20 wide: a full tile, a cut one
    "stem_3x3_stride2_odd": (2, 3, 97, 95, 32, 3, 2, (0, 1, 2, 0), "hardswish"),   # two panels, two images, split
    "3x3_stride1_res": (1, 2, 18, 35, 16, 3, 1, (1, 1, 1, 1), "res_relu"),
    "5x5_stride2_silu": (1, 1, 30, 70, 16, 5, 2, (2, 2, 2, 2), "silu"),           # interior tiles between border ones
    "3x3_no_pad_3_panels": (1, 3, 12, 16, 48, 3, 1, (0, 0, 0, 0), "none"),
    "stem_8_channels": (2, 1, 28, 28, 8, 3, 1, (1, 1, 1, 1), "relu"),              # panels of 8
    "stem_8_channels_stride2": (2, 3, 64, 66, 8, 3, 2, (1, 1, 1, 1), "hardswish"),
}
if sgemm.W == 8:    # panels of 8: 24 channels are three
    CASES["stem_24_channels_stride2"] = (1, 3, 30, 34, 24, 3, 2, (1, 1, 1, 1), "silu")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_lanes_matches_reference(name, threads, tmp_path):
    m, ins = dense_conv_model(*CASES[name], RNG)
    feeds = {k: RNG.standard_normal(shape).astype(np.float32) for k, _, shape in ins}
    got = compile(m, cache_dir=str(tmp_path), threads=threads).run(feeds)["z"]
    np.testing.assert_allclose(got, reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
    src = "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))
    assert "L_conv_lanes.conv" in src, src
    if threads == 2 and name == "stem_3x3_stride2_odd":
        assert "L_conv_lanes.conv_par(" in src, src


def test_channels_no_tile_fits_are_refused():
    """20 output channels fill no panel (16 or 8; with AVX2 8): the kernel refuses them rather
    than write past its output (lower_nn never sends it such a conv)."""
    from targets.cpu.kernels import conv_lanes
    x = RNG.standard_normal((1, 3, 1, 9, 9)).astype(np.float32)
    w = RNG.standard_normal((20, 3, 1, 3, 3)).astype(np.float32)
    out = np.empty((1, 20, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="conv_lanes"):
        conv_lanes.conv(x, conv_lanes.pack(w), np.zeros(20, np.float32), out, (1, 2, 2), (0, 0, 0), (3, 3),
                        np.empty((0, 0, 0, 0, 0), np.float32), 0, 0.0, 0.0)
