"""CUDA conv / pooling / LRN kernels (targets/cuda/kernels/nn.py) against the CPU kernels.

The oracle is targets/cpu/kernels/nn.py, which passes the ONNX conformance cases for these
ops, called with the same rank-5 arrays and parameters (global pooling is also checked
against numpy).  Runs under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) or on a GPU;
shapes are tiny because the simulator pays for every simulated thread.
"""
import numpy as np
import pytest
from numba import config, cuda

if not config.ENABLE_CUDASIM and not cuda.is_available():
    pytest.skip("needs a GPU or NUMBA_ENABLE_CUDASIM=1", allow_module_level=True)

from targets.cpu.kernels import nn as cpu  # noqa: E402
from targets.cuda.kernels import nn as gpu  # noqa: E402

RNG = np.random.default_rng(0)
DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


def _out_len(size, k, s, pb, pe, d, ceil=False):
    span = size + pb + pe - ((k - 1) * d + 1)
    return (-(-span // s) if ceil else span // s) + 1


def _out_shape(x_shape, k, s, pb, pe, d, ceil=False):
    return tuple(_out_len(*a, ceil=ceil) for a in zip(x_shape[2:], k, s, pb, pe, d))


def _on_gpu(fn, *args, outs):
    """fn(*leading input arrays, *outs, *params) on device copies; returns the outs on the host."""
    n_in = next(i for i, a in enumerate(args + (None,)) if not isinstance(a, np.ndarray))
    douts = [cuda.to_device(np.zeros_like(o)) for o in outs]
    fn(*[cuda.to_device(a) for a in args[:n_in]], *douts, *args[n_in:])
    return [d.copy_to_host() for d in douts]


def _close(got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=_tol(dtype), atol=_tol(dtype))


# ------------------------------------------------------------------------------ Conv

# (x shape, M, kernel, strides, pads_begin, pads_end, dilations, group); 1-D and 2-D
# problems as rank-5 views with leading size-1 spatial dims.
CONV_CASES = [
    ((2, 3, 1, 5, 5), 4, (1, 3, 3), (1, 1, 1), (0, 1, 1), (0, 1, 1), (1, 1, 1), 1),  # 2-D same pad
    ((1, 2, 1, 6, 7), 5, (1, 3, 2), (1, 2, 3), (0, 1, 0), (0, 0, 2), (1, 2, 1), 1),  # strides, dilation
    ((1, 4, 1, 4, 4), 8, (1, 3, 3), (1, 1, 1), (0, 1, 1), (0, 1, 1), (1, 1, 1), 2),  # 2 groups
    ((2, 3, 1, 5, 4), 3, (1, 3, 3), (1, 2, 1), (0, 1, 1), (0, 1, 1), (1, 1, 1), 3),  # depthwise
    ((1, 2, 1, 4, 4), 6, (1, 2, 2), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 2),  # 3 out channels per group
    ((2, 3, 1, 1, 9), 4, (1, 1, 3), (1, 1, 2), (0, 0, 1), (0, 0, 1), (1, 1, 1), 1),  # 1-D
    ((1, 2, 3, 4, 3), 4, (2, 2, 2), (1, 2, 1), (1, 0, 1), (0, 1, 1), (2, 1, 1), 1),  # 3-D
    ((1, 5, 1, 3, 3), 4, (1, 1, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),  # 1x1
]


def _conv_case(case, dtype):
    xs, m, k, s, pb, pe, d, g = case
    x = RNG.standard_normal(xs).astype(dtype)
    w = RNG.standard_normal((m, xs[1] // g) + k).astype(dtype)
    b = RNG.standard_normal(m).astype(dtype)
    out = np.zeros((xs[0], m) + _out_shape(xs, k, s, pb, pe, d), dtype)
    return x, w, b, out, s, pb, d, g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(case, dtype):
    x, w, b, out, s, pb, d, g = _conv_case(case, dtype)
    cpu.conv(x, w, b, out, s, pb, d, g)
    (got,) = _on_gpu(gpu.conv, x, w, b, s, pb, d, g, outs=[out])
    _close(got, out, dtype)


@pytest.mark.parametrize("direct_max_mg", [0, 1 << 30])
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[3], CONV_CASES[6]])
def test_conv_both_paths(case, direct_max_mg, monkeypatch):
    """The implicit GEMM and the direct kernel each handle every shape, whichever is picked."""
    monkeypatch.setattr(gpu, "DIRECT_MAX_MG", direct_max_mg)
    x, w, b, out, s, pb, d, g = _conv_case(case, np.float32)
    cpu.conv(x, w, b, out, s, pb, d, g)
    (got,) = _on_gpu(gpu.conv, x, w, b, s, pb, d, g, outs=[out])
    _close(got, out, np.float32)


# (x shape, M, kernel, strides, pads_begin, pads_end, dilations, group, output_padding)
CONV_T_CASES = [
    ((1, 2, 1, 3, 3), 3, (1, 3, 3), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1, (0, 0, 0)),
    ((2, 2, 1, 3, 4), 2, (1, 3, 2), (1, 2, 3), (0, 1, 0), (0, 1, 1), (1, 1, 2), 1, (0, 1, 0)),
    ((1, 4, 1, 2, 3), 6, (1, 2, 2), (1, 2, 1), (0, 0, 1), (0, 0, 0), (1, 1, 1), 2, (0, 0, 0)),
    ((1, 2, 1, 1, 4), 2, (1, 1, 3), (1, 1, 2), (0, 0, 1), (0, 0, 1), (1, 1, 1), 1, (0, 0, 1)),  # 1-D
    ((1, 1, 2, 2, 2), 2, (2, 2, 2), (2, 1, 2), (0, 1, 0), (1, 0, 0), (1, 2, 1), 1, (0, 0, 0)),  # 3-D
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_T_CASES)
def test_conv_transpose(case, dtype):
    xs, m, k, s, pb, pe, d, g, op = case
    x = RNG.standard_normal(xs).astype(dtype)
    w = RNG.standard_normal((xs[1], m // g) + k).astype(dtype)
    b = RNG.standard_normal(m).astype(dtype)
    osp = tuple((i - 1) * st - p0 - p1 + (kk - 1) * dd + 1 + o
                for i, st, p0, p1, kk, dd, o in zip(xs[2:], s, pb, pe, k, d, op))
    out = np.zeros((xs[0], m) + osp, dtype)
    cpu.conv_transpose(x, w, b, out, s, pb, d, g)
    (got,) = _on_gpu(gpu.conv_transpose, x, w, b, s, pb, d, g, outs=[out])
    _close(got, out, dtype)


# ------------------------------------------------------------------------- Pooling

# (x shape, kernel, strides, pads_begin, pads_end, dilations, ceil_mode)
POOL_CASES = [
    ((1, 2, 1, 5, 5), (1, 3, 3), (1, 2, 2), (0, 1, 1), (0, 1, 1), (1, 1, 1), False),
    ((2, 1, 1, 5, 6), (1, 2, 3), (1, 1, 2), (0, 0, 1), (0, 1, 0), (1, 2, 1), True),   # ceil: taps past pads_end
    ((1, 2, 1, 1, 7), (1, 1, 3), (1, 1, 2), (0, 0, 1), (0, 0, 1), (1, 1, 1), False),  # 1-D
    ((1, 1, 3, 3, 4), (2, 2, 2), (1, 2, 1), (1, 0, 1), (0, 1, 1), (1, 1, 2), False),  # 3-D
    ((1, 1, 1, 2, 2), (1, 2, 2), (1, 2, 2), (0, 2, 2), (0, 2, 2), (1, 1, 1), False),  # all-padding windows
]


def _pool_out(case, dtype):
    xs, k, s, pb, pe, d, ceil = case
    return np.zeros(xs[:2] + _out_shape(xs, k, s, pb, pe, d, ceil), dtype)


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_with_indices(case, dtype, storage_order):
    xs, k, s, pb, pe, d, _ = case
    x = RNG.standard_normal(xs).astype(dtype)
    out = _pool_out(case, dtype)
    idx = np.zeros(out.shape, np.int64)
    cpu.max_pool(x, out, idx, k, s, pb, d, storage_order)
    got, got_idx = _on_gpu(gpu.max_pool, x, k, s, pb, d, storage_order, outs=[out, idx])
    np.testing.assert_array_equal(got, out)
    np.testing.assert_array_equal(got_idx, idx)


@pytest.mark.parametrize("case", POOL_CASES[:2])
def test_max_pool_without_indices_and_nan(case):
    """A size-0 indices array means "not wanted" (as on the CPU); ties and NaN follow the CPU rule."""
    xs, k, s, pb, _, d, _ = case
    x = RNG.integers(0, 3, xs).astype(np.float32)   # many ties
    x.reshape(-1)[::4] = np.nan
    out = _pool_out(case, np.float32)
    none = np.empty((0, 0, 0, 0, 0), np.int64)
    cpu.max_pool(x, out, none, k, s, pb, d, 0)
    dx = cuda.to_device(x)
    dout = cuda.to_device(np.zeros_like(out))
    gpu.max_pool(dx, dout, cuda.to_device(none), k, s, pb, d, 0)
    np.testing.assert_array_equal(dout.copy_to_host(), out)


@pytest.mark.parametrize("op,param", [("avg", 0), ("avg", 1), ("lp", 1.0), ("lp", 2.0), ("lp", 3.0)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES[:4])
def test_sum_pools(case, dtype, op, param):
    """AveragePool (param: count_include_pad) and LpPool (param: p)."""
    xs, k, s, pb, pe, d, _ = case
    x = RNG.standard_normal(xs).astype(dtype)
    out = _pool_out(case, dtype)
    geometry = (k, s, pb, pe, d) if op == "avg" else (k, s, pb, d)
    getattr(cpu, op + "_pool")(x, out, *geometry, param)
    (got,) = _on_gpu(getattr(gpu, op + "_pool"), x, *geometry, param, outs=[out])
    _close(got, out, dtype)


@pytest.mark.parametrize("is_max", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (1, 2, 21)])  # S below/above the block width
def test_global_pool(shape, dtype, is_max):
    x = RNG.standard_normal(shape).astype(dtype)
    want = x.max(axis=2) if is_max else x.mean(axis=2, dtype=np.float64).astype(dtype)
    cpu_out = np.zeros(shape[:2], dtype)
    cpu.global_pool(x, cpu_out, is_max)
    (got,) = _on_gpu(gpu.global_pool, x, is_max, outs=[cpu_out])
    _close(got, want, dtype)
    _close(got, cpu_out, dtype)


def test_global_max_pool_propagates_nan():
    x = RNG.standard_normal((1, 3, 11)).astype(np.float32)
    x[0, 0, 7] = np.nan
    x[0, 2, 0] = np.nan
    (got,) = _on_gpu(gpu.global_pool, x, True, outs=[np.zeros((1, 3), np.float32)])
    np.testing.assert_array_equal(got, x.max(axis=2))


# ------------------------------------------------------------------- Normalization


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,shape", [(3, (2, 5, 3)), (4, (1, 6, 4)), (1, (1, 2, 3)), (7, (1, 3, 2))])
def test_lrn(size, shape, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    out = np.zeros_like(x)
    cpu.lrn(x, out, size, 1e-2, 0.75, 2.0)
    (got,) = _on_gpu(gpu.lrn, x, size, 1e-2, 0.75, 2.0, outs=[out])
    _close(got, out, dtype)
