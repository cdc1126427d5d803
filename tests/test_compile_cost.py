"""What keeps cold compiles short: kernels compile once per argument type, not per constant,
and the float32 conv paths sit behind C callbacks (their callers link a symbol, not their
code), and the callbacks compute what the kernels they wrap compute."""
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher
from onnx import helper

from compiler import compile
from targets.cpu.kernels import callback_conv_gemm, callback_dw, nn, sgemm  # noqa: F401 (registers the callbacks, bound before a kernel here compiles)
from targets.cpu.kernels.jit import njit as kernel_njit
from tests.helpers import F, model, reference

RNG = np.random.default_rng(11)


def test_kernel_compiles_once_for_its_constants():
    @kernel_njit(cache=False)
    def shift(a, k):
        return a + k

    @numba.njit(cache=False)
    def caller(a):
        return shift(a, 0) + shift(a, 1) + shift(a, 2)

    assert caller(1.0) == 6.0
    assert [str(s) for s in shift.signatures] == ["(float64, int64)"]


def _mobile_block():
    """A stem conv, a depthwise 3x3 (the wide path) and a strided one, a 1x1 and a 3x3 conv
    with a residual: the float32 paths behind the callbacks, at 2 threads partly parallel."""
    c = 16
    w = lambda *s: (RNG.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)   # noqa: E731
    inits = {"w0": w(c, 3, 3, 3), "wd": w(c, 1, 3, 3), "ws": w(c, 1, 3, 3), "w1": w(c, c, 1, 1), "w3": w(c, c, 3, 3),
             "b": RNG.standard_normal(c).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w0", "b"], ["a"], pads=[1] * 4), helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "wd", "b"], ["d"], pads=[1] * 4, group=c),
             helper.make_node("Conv", ["d", "ws"], ["e"], pads=[1] * 4, strides=[2, 2], group=c),
             helper.make_node("Conv", ["e", "w1", "b"], ["f"]), helper.make_node("Clip", ["f", "lo", "hi"], ["fc"]),
             helper.make_node("Conv", ["fc", "w3"], ["g"], pads=[1] * 4), helper.make_node("Add", ["g", "e"], ["y"])]
    inits.update(lo=np.array(0, np.float32), hi=np.array(6, np.float32))
    m = model(nodes, [("x", F, [2, 3, 48, 48])], [("y", F, [2, c, 24, 24])], inits)
    return m, {"x": RNG.standard_normal((2, 3, 48, 48)).astype(np.float32)}


@pytest.mark.parametrize("threads", [1, 2])
def test_cnn_through_the_callbacks_matches_the_reference_without_literal_kernels(tmp_path, threads):
    m, feeds = _mobile_block()
    fn = compile(m, cache_dir=str(tmp_path), threads=threads)
    np.testing.assert_allclose(fn(**feeds), reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
    sources = "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))
    # its 48-wide depthwise conv on kernels/window3x3.py (AVX-512; with AVX2 on dw_small), the stem
    # on conv_lanes (AVX-512) or the GEMM's callback
    assert ("L_window3x3" if sgemm.W == 16 else "L_dw_small") in sources, sources
    assert "L_conv_lanes" in sources or "L_callback_conv_gemm" in sources, sources
    for name, mod in list(sys.modules.items()):
        if name.startswith("onnxjit_lib_"):
            for f in vars(mod).values():
                if isinstance(f, CPUDispatcher):
                    assert not any("Literal" in str(s) for s in f.signatures), (name, f.signatures)


_PACKAGE_CALLBACKS = """
import sys, numpy as np
from compiler import compile
from targets.cpu.kernels import jit
from tests.helpers import reference
from tests.test_compile_cost import _mobile_block
m, feeds = _mobile_block()
fn = compile(m, cache_dir=sys.argv[1], threads=2)
np.testing.assert_allclose(fn(**feeds), reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
pending = {p[0] for p in jit._pending}
imported = {n: m for n, m in sys.modules.items() if n.startswith("targets.cpu.kernels.")}
symbols = {n: [v for k, v in vars(m).items() if k.endswith("SYMBOL") and isinstance(v, str)] for n, m in imported.items()}
print(sorted(imported), sorted(pending))
assert "targets.cpu.kernels.sgemm" in imported and any("conv" in n for n in imported)
for n in ("sgemm", "conv_small", "conv_lanes", "dw_small", "winograd", "window3x3", "maxpool3x3"):
    for s in symbols.get("targets.cpu.kernels." + n, []):
        assert s in pending, (n, s)
"""


def test_compile_leaves_the_package_callbacks_uncompiled(tmp_path):
    """compile() plans with the package's kernel modules (packing, tiling) and runs the model's
    library copies: the package's callbacks, each seconds of a cold compile, stay registered and
    uncompiled; the copies compile theirs (the output checked against the reference)."""
    run = subprocess.run([sys.executable, "-c", _PACKAGE_CALLBACKS, str(tmp_path)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # -c imports from cwd
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_package_kernel_binds_its_callback_when_compiled():
    """Called directly (as these tests do), a package kernel binds the callbacks first."""
    from targets.cpu.kernels import blas
    a, b = RNG.standard_normal((64, 40)).astype(np.float32), RNG.standard_normal((40, 72)).astype(np.float32)
    c = np.zeros((64, 72), np.float32)
    blas.gemm(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def _conv_ref(x, w, b, strides, pads, group):
    """float64 direct convolution (2-D) for the callback checks."""
    N, C, H, W = x.shape
    M, cg, kH, kW = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0],) * 2, (pads[1],) * 2))
    OH, OW = (H + 2 * pads[0] - kH) // strides[0] + 1, (W + 2 * pads[1] - kW) // strides[1] + 1
    out = np.zeros((N, M, OH, OW))
    mg = M // group
    for m in range(M):
        g = m // mg
        for i in range(kH):
            for j in range(kW):
                patch = xp[:, g * cg:(g + 1) * cg, i:i + strides[0] * OH:strides[0], j:j + strides[1] * OW:strides[1]]
                out[:, m] += np.einsum("nchw,c->nhw", patch, w[m, :, i, j])
    return out + b[None, :, None, None]


def _args5(x, w, b, out, strides, pads, group, res):
    as5 = lambda a: a.reshape(a.shape[:2] + (1,) + a.shape[2:])   # noqa: E731
    return (as5(x), as5(w), b, as5(out), (1,) + strides, (0,) + pads, (1, 1, 1), group, as5(res), nn.ACT_NONE, 0.0, 0.0)


def test_conv_gemm32_copies_strided_inputs_and_refuses_other_dtypes():
    x = RNG.standard_normal((1, 8, 12, 10)).astype(np.float32).transpose(0, 1, 3, 2)   # not C-contiguous
    w = RNG.standard_normal((6, 8, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(6).astype(np.float32)
    out = np.empty((1, 6, 10, 12), np.float32)
    res = np.empty((0, 0, 0, 0), np.float32)
    nn.conv_gemm32(*_args5(x, w, b, out, (1, 1), (1, 1), 1, res))
    np.testing.assert_allclose(out, _conv_ref(x, w, b, (1, 1), (1, 1), 1), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="float32"):
        nn.conv_gemm32(*_args5(x.astype(np.float64), w, b, out, (1, 1), (1, 1), 1, res))


@pytest.mark.parametrize("stride", [1, 2])
def test_dw_range32_runs_a_range_of_planes(stride):
    c = 6
    x = RNG.standard_normal((2, c, 11, 9)).astype(np.float32)
    w = RNG.standard_normal((c, 1, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(c).astype(np.float32)
    oh, ow = (11 + 2 - 3) // stride + 1, (9 + 2 - 3) // stride + 1
    out = np.full((2, c, oh, ow), np.nan, np.float32)
    res = RNG.standard_normal((2, c, oh, ow)).astype(np.float32)
    a = _args5(x, w, b, out, (stride, stride), (1, 1), c, res)
    nn.dw_range32(a[0], a[1], a[3], a[4], a[5], c, 3, 2 * c, b, a[8], nn.ACT_NONE, 0.0, 0.0)   # planes 3 .. 11 of 12
    want = _conv_ref(x, w, b, (stride, stride), (1, 1), c) + res
    got = out.reshape(2 * c, oh, ow)
    np.testing.assert_allclose(got[3:], want.reshape(2 * c, oh, ow)[3:], rtol=1e-4, atol=1e-4)
    assert np.isnan(got[:3]).all()
