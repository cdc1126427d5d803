"""targets/cuda/kernels/resize.py against the CPU kernel (targets/cpu/kernels/resize.py, which
passes ONNX conformance) on random inputs, under the CUDA simulator, compared bit for bit.
Tiny shapes (the simulator runs every thread in Python), most with more outputs than one
launch has threads (the grid-stride loop)."""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numba import config, cuda  # noqa: E402

if not config.ENABLE_CUDASIM and not cuda.is_available():
    pytest.skip("no CUDA simulator and no GPU", allow_module_level=True)

from targets.cpu.kernels import resize as C  # noqa: E402
from targets.cuda.kernels import resize as K  # noqa: E402

RNG = np.random.default_rng(0)
COORDS = sorted(C._COORDS.values())
NEARESTS = sorted(C._NEAREST.values())
ROI = (0.0, 0.0, -0.2, 0.1, 1.0, 1.0, 0.9, 1.3)   # extrapolates on both resized axes


def data(shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return RNG.standard_normal(shape).astype(dt)
    if dt.kind == "b":
        return RNG.integers(0, 2, shape).astype(dt)
    if dt == np.uint8:
        return RNG.choice(np.array([0, 1, 128, 254, 255], dt), shape)
    return RNG.integers(-50, 50, shape).astype(dt)


def check(x, out_shape, scales, roi, mode, coord=C.COORD_HALF_PIXEL, nearest=C.NEAREST_ROUND_PREFER_FLOOR,
          cubic_a=-0.75, exclude=0, ev=0.0, antialias=0, roi_dtype=np.float64):
    """CPU and CUDA resize of x with the same arguments; exact equality."""
    scales = np.asarray(scales, np.float64)
    roi = np.asarray(roi, roi_dtype)
    args = (mode, coord, nearest, cubic_a, exclude, ev, antialias)
    cpu = np.zeros(out_shape, x.dtype)
    C.resize(x, cpu, scales, roi, *args)
    out = cuda.to_device(np.zeros(out_shape, x.dtype))
    K.resize(cuda.to_device(x), out, cuda.to_device(scales), cuda.to_device(roi), *args)
    np.testing.assert_array_equal(out.copy_to_host(), cpu)
    return cpu


def plan(shape, **kw):
    return C.resize_plan(shape, **kw)


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("nearest", NEARESTS)
def test_nearest(coord, nearest):
    x = data((2, 3, 4), np.float32)
    out_shape, scales = plan(x.shape, scales=[1.0, 1.5, 0.75])
    check(x, out_shape, scales, ROI[:3] + ROI[4:7] if coord == C.COORD_TF_CROP_AND_RESIZE else (),
          C.MODE_NEAREST, coord, nearest, ev=7.5)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.float64])
def test_nearest_dtypes_and_extrapolation(dtype):
    x = data((1, 2, 5, 3), dtype)
    out_shape, scales = plan(x.shape, sizes=[1, 2, 3, 7])
    check(x, out_shape, scales, ROI, C.MODE_NEAREST, C.COORD_TF_CROP_AND_RESIZE, ev=300.7)


@pytest.mark.parametrize("mode", [C.MODE_LINEAR, C.MODE_CUBIC])
@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("antialias", [0, 1])
def test_interp(mode, coord, exclude, antialias):
    """Upscale one axis, downscale the other (antialias widens the window there)."""
    x = data((1, 5, 6), np.float32)
    out_shape, scales = plan(x.shape, scales=[1.0, 0.6, 1.4])
    roi = (0.0, -0.3, 0.2, 1.0, 1.1, 0.8) if coord == C.COORD_TF_CROP_AND_RESIZE else (0, 0, 0, 1, 1, 1)
    check(x, out_shape, scales, roi, mode, coord, cubic_a=-0.5, exclude=exclude, ev=-2.0, antialias=antialias)


@pytest.mark.parametrize("roi_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", [C.MODE_LINEAR, C.MODE_CUBIC])
def test_crop_and_resize_roi_dtype(roi_dtype, mode):
    """roi arithmetic in the roi's dtype; an extrapolated row of the first pass feeds the second."""
    x = data((2, 4, 5), np.float64)
    out_shape, scales = plan(x.shape, sizes=[2, 6, 1])
    check(x, out_shape, scales, (0.0, 0.13, -0.31, 1.0, 1.27, 0.71), mode, C.COORD_TF_CROP_AND_RESIZE,
          ev=1.5, roi_dtype=roi_dtype)


@pytest.mark.parametrize("mode", [C.MODE_LINEAR, C.MODE_CUBIC])
def test_uint8_rounds_and_saturates(mode):
    """Cubic overshoots saturate; linear x2 asymmetric makes exact halves (round half to even)."""
    x = data((6, 7), np.uint8)
    out_shape, scales = plan(x.shape, scales=[1.5, 2.0])
    check(x, out_shape, scales, (), mode, C.COORD_ALIGN_CORNERS)
    x = RNG.integers(0, 256, (2, 9)).astype(np.uint8)
    out_shape, scales = plan(x.shape, scales=[1.0, 2.0])
    res = check(x, out_shape, scales, (), mode, C.COORD_ASYMMETRIC)
    if mode == C.MODE_LINEAR:
        halves = (x[:, :-1].astype(int) + x[:, 1:]) / 2
        assert (res[:, 1:-1:2] == np.rint(halves)).all() and (halves % 1 == 0.5).any()


@pytest.mark.parametrize("shape,sizes", [((5,), [8]), ((7,), [1]), ((2, 1, 3, 2, 2), [2, 2, 4, 2, 3]),
                                         ((3, 4), [3, 4])])
@pytest.mark.parametrize("mode", [C.MODE_NEAREST, C.MODE_LINEAR, C.MODE_CUBIC])
def test_ranks_sizes_identity(shape, sizes, mode):
    """Rank 1 and 5, one output element, identity axes, and the all-identity copy."""
    x = data(shape, np.float32)
    out_shape, scales = plan(x.shape, sizes=sizes)
    check(x, out_shape, scales, (), mode, C.COORD_PYTORCH_HALF_PIXEL)


def test_upsample_codes_and_antialias_cubic_downscale():
    x = data((2, 9, 4), np.float32)
    mode, coord, nearest = C.upsample_codes("linear")
    out_shape, scales = plan(x.shape, scales=[1.0, 2.5, 1.0])
    check(x, out_shape, scales, (), mode, coord, nearest)
    out_shape, scales = plan(x.shape, scales=[1.0, 0.34, 0.5])
    check(x, out_shape, scales, (), C.MODE_CUBIC, C.COORD_HALF_PIXEL_SYMMETRIC, antialias=1, exclude=1)


def test_rejects_bad_calls():
    x = cuda.to_device(np.zeros((1,) * (K.MAX_RANK + 1), np.float32))
    s = cuda.to_device(np.ones(K.MAX_RANK + 1))
    with pytest.raises(ValueError):
        K.resize(x, x, s, cuda.to_device(np.zeros(0)), 1, 0, 0, -0.75, 0, 0.0, 0)
    x = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        K.resize(x, x, cuda.to_device(np.ones(1)), cuda.to_device(np.zeros(0)), 1, C.COORD_TF_CROP_AND_RESIZE,
                 0, -0.75, 0, 0.0, 0)
