"""Tests for targets/cpu/kernels/resize.py: ONNX conformance cases + onnx.reference.

`run_node` plays the compiler's role: it reads the node's attributes and inputs, calls
the host-side `resize_plan` / `expand_roi` / `resize_codes`, allocates `out` and runs
the Numba kernel.  Few dtype/rank signatures are used so cold compilation stays short.
"""
from __future__ import annotations

import functools
import importlib
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from targets.cpu.kernels import resize as K  # noqa: E402

RTOL, ATOL = 1e-3, 1e-7
# onnx.reference turns FLOAT attributes into np.float32, so ReferenceEvaluator computes
# the cubic coefficients in float32 (NEP 50), while the kernel (and the generator of the
# official expected data) uses float64.  That gives float32-ulp differences which can
# exceed atol 1e-7 after cancellation, so cubic-vs-ReferenceEvaluator uses this atol.
ATOL_CUBIC = 1e-5
RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- caller helper


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _opt(a):
    """Absent (None) or empty optional input -> None."""
    return None if a is None or np.asarray(a).size == 0 else np.asarray(a)


def run_node(node, inputs, opset):
    """Run one Resize/Upsample node; ``inputs`` aligned with node.input (None = absent)."""
    at = _attrs(node)
    ins = list(inputs) + [None] * 4
    x = np.asarray(ins[0])
    r = x.ndim
    roi = scales = sizes = axes = None
    policy = "stretch"
    if node.op_type == "Upsample" or opset < 11:
        # Upsample-7 (attr scales), Upsample-9 / Resize-10 (input scales): asymmetric.
        scales = at["scales"] if "scales" in at else _opt(ins[1])
        mode, coord, nearest = K.upsample_codes(at.get("mode", "nearest"))
        cubic_a, excl, ev, aa = -0.75, 0, 0.0, 0
    else:
        roi, scales, sizes = _opt(ins[1]), _opt(ins[2]), _opt(ins[3])
        axes = at.get("axes")
        policy = at.get("keep_aspect_ratio_policy", "stretch")
        mode, coord, nearest = K.resize_codes(
            at.get("mode", "nearest"), at.get("coordinate_transformation_mode", "half_pixel"),
            at.get("nearest_mode", "round_prefer_floor"))
        cubic_a = float(at.get("cubic_coeff_a", -0.75))
        excl = int(at.get("exclude_outside", 0))
        ev = float(at.get("extrapolation_value", 0.0))
        aa = int(at.get("antialias", 0))
    out_shape, fscales = K.resize_plan(
        x.shape, scales=None if scales is None else np.asarray(scales).tolist(),
        sizes=None if sizes is None else sizes.tolist(), axes=axes,
        keep_aspect_ratio_policy=policy)
    roi_dt = np.float64 if roi is not None and roi.dtype == np.float64 else np.float32
    roi_full = np.array(K.expand_roi(r, None if roi is None else roi.tolist(), axes), roi_dt)
    comp = x.astype(np.float32) if x.dtype == np.float16 else x
    out = np.empty(out_shape, comp.dtype)
    K.resize(comp, out, np.array(fscales, np.float64), roi_full, mode, coord, nearest,
             cubic_a, excl, ev, aa)
    return out.astype(x.dtype, copy=False)


# --------------------------------------------------------------------------- official cases

_OFFICIAL_MODULES = ["resize", "upsample"]


@functools.lru_cache(maxsize=1)
def _official_cases():
    """Official single-node Resize/Upsample cases (imports only their case modules)."""
    import onnx.backend.test.case.node as node_cases

    cases = None
    if getattr(node_cases, "_TargetOpType", "x") is None and hasattr(node_cases, "_NodeTestCases"):
        try:
            for m in _OFFICIAL_MODULES:
                importlib.import_module(f"{node_cases.__name__}.{m}")
            cases = node_cases._NodeTestCases
        except ImportError:
            cases = None
    if cases is None:
        cases = node_cases.collect_testcases()
    out = {}
    for c in cases:
        g = c.model.graph
        if len(g.node) == 1 and g.node[0].op_type in ("Resize", "Upsample"):
            out.setdefault(c.name, c)
    return out


def _opset(model):
    for oi in model.opset_import:
        if oi.domain in ("", "ai.onnx"):
            return oi.version
    return 19


# Official cases the kernel cannot match (name -> reason); none so far.
OFFICIAL_XFAIL: dict[str, str] = {}


def test_official_cases_present():
    names = set(_official_cases())
    assert "test_upsample_nearest" in names
    assert sum(n.startswith("test_resize_") for n in names) >= 39


@pytest.mark.parametrize("name", sorted(_official_cases()))
def test_official(name):
    if name in OFFICIAL_XFAIL:
        pytest.xfail(OFFICIAL_XFAIL[name])
    case = _official_cases()[name]
    node = case.model.graph.node[0]
    for inputs, outputs in case.data_sets:
        it = iter(inputs)
        aligned = [np.asarray(next(it)) if n else None for n in node.input]
        got = run_node(node, aligned, _opset(case.model))
        exp = np.asarray(outputs[0])
        assert got.shape == exp.shape and got.dtype == exp.dtype
        np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64),
                                   rtol=case.rtol or RTOL, atol=case.atol or ATOL)


# --------------------------------------------------------------------------- vs reference

_NP2ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
            np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int64): TensorProto.INT64,
            np.dtype(np.int32): TensorProto.INT32}


def _ref_and_kernel(x, opset=19, roi=None, scales=None, sizes=None, **attrs):
    """Build a one-node Resize model, run onnx.reference and our run_node on it."""
    et = _NP2ONNX[x.dtype]
    names, feeds, vis = ["X"], {"X": x}, [helper.make_tensor_value_info("X", et, x.shape)]
    for nm, v, tp in (("roi", roi, TensorProto.FLOAT), ("scales", scales, TensorProto.FLOAT),
                      ("sizes", sizes, TensorProto.INT64)):
        if v is None:
            names.append("")
            continue
        arr = np.asarray(v, np.float32 if tp == TensorProto.FLOAT else np.int64)
        names.append(nm)
        feeds[nm] = arr
        vis.append(helper.make_tensor_value_info(nm, tp, arr.shape))
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node("Resize", names, ["Y"], **attrs)
    g = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("Y", et, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    exp = ReferenceEvaluator(model).run(None, feeds)[0]
    aligned = [feeds[n] if n else None for n in names]
    got = run_node(node, aligned, opset)
    return got, exp


def _check(got, exp, atol=ATOL):
    assert got.shape == exp.shape, (got.shape, exp.shape)
    assert got.dtype == exp.dtype
    if np.issubdtype(exp.dtype, np.integer):
        np.testing.assert_array_equal(got, exp)
    else:
        np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64),
                                   rtol=RTOL, atol=atol)


_COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
           "asymmetric", "tf_crop_and_resize"]
_NMODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _rand_scales(rank, k, rng):
    s = [1.0] * rank
    for a in range(rank - k, rank):
        s[a] = float(rng.choice([0.3, 0.5, 0.6, 0.75, 1.0, 1.3, 1.5, 2.0, 2.5, 3.0]))
    return s


def _rand_roi(rank, rng):
    lo = rng.uniform(-0.2, 0.5, rank)
    hi = rng.uniform(0.5, 1.2, rank)
    return np.concatenate([lo, hi]).astype(np.float32)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coord", _COORDS)
def test_random_modes_coords(mode, coord):
    rng = np.random.default_rng(zlib.crc32(f"{mode}/{coord}".encode()))
    for trial in range(6):
        rank = 4 if trial < 4 else 3
        shape = tuple(int(v) for v in rng.integers(1, 7, rank))
        x = rng.standard_normal(shape).astype(np.float32)
        attrs = dict(mode=mode, coordinate_transformation_mode=coord)
        if mode == "nearest":
            attrs["nearest_mode"] = _NMODES[trial % 4]
        if mode == "cubic":
            attrs["cubic_coeff_a"] = float(rng.choice([-0.75, -0.5]))
            attrs["exclude_outside"] = int(trial % 2)
        roi = _rand_roi(rank, rng) if coord == "tf_crop_and_resize" else None
        if coord == "tf_crop_and_resize":
            attrs["extrapolation_value"] = float(rng.choice([0.0, 10.0]))
        if trial % 2:
            sizes = [d if a < rank - 2 else int(rng.integers(1, 10)) for a, d in enumerate(shape)]
            got, exp = _ref_and_kernel(x, roi=roi, sizes=sizes, **attrs)
        else:
            got, exp = _ref_and_kernel(x, roi=roi, scales=_rand_scales(rank, 2, rng), **attrs)
        _check(got, exp, ATOL_CUBIC if mode == "cubic" else ATOL)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_random_antialias(mode):
    rng = np.random.default_rng(7)
    for trial in range(8):
        x = rng.standard_normal((1, 2, 9, 11)).astype(np.float32)
        coord = _COORDS[trial % 5]
        attrs = dict(mode=mode, antialias=1, coordinate_transformation_mode=coord,
                     exclude_outside=trial % 2)
        if trial < 4:
            sc = [float(rng.choice([0.2, 0.35, 0.5, 0.8, 1.6])) for _ in range(2)]
            got, exp = _ref_and_kernel(x, scales=[1.0, 1.0] + sc, **attrs)
        else:
            got, exp = _ref_and_kernel(x, sizes=[1, 2, int(rng.integers(1, 9)),
                                                 int(rng.integers(1, 14))], **attrs)
        _check(got, exp, ATOL_CUBIC if mode == "cubic" else ATOL)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_axes_and_policy(policy):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    for axes, sizes in (([2, 3], [7, 3]), ([3, 1], [9, 2]), ([3, 0], [2, 5])):
        for mode in ("nearest", "linear"):
            got, exp = _ref_and_kernel(x, sizes=sizes, axes=axes, mode=mode,
                                       keep_aspect_ratio_policy=policy)
            _check(got, exp)
    got, exp = _ref_and_kernel(x, scales=[0.5, 2.5], axes=[1, 3], mode="cubic")
    _check(got, exp, ATOL_CUBIC)
    # negative axes (the reference cannot take them): same as the normalised ones
    neg = run_node(helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], axes=[-1, 0],
                                    mode="linear", keep_aspect_ratio_policy=policy),
                   [x, None, None, np.array([2, 5], np.int64)], 19)
    _, exp = _ref_and_kernel(x, sizes=[2, 5], axes=[3, 0], mode="linear",
                             keep_aspect_ratio_policy=policy)
    _check(neg, exp)
    got, exp = _ref_and_kernel(x, roi=[0.1, 0.3, 0.9, 1.1], scales=[1.5, 0.8], axes=[3, 2],
                               mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
                               extrapolation_value=-3.0)
    _check(got, exp)


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.int64])
def test_dtypes(dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((2, 5, 6)) * 100).astype(dtype) if dtype == np.float64 else \
        rng.integers(0, 256, (2, 5, 6)).astype(dtype)
    modes = ["nearest", "linear", "cubic"]
    for mode in modes:
        for scales in ([1.0, 1.7, 0.6], [1.0, 0.5, 2.0]):
            got, exp = _ref_and_kernel(x, scales=scales, mode=mode,
                                       coordinate_transformation_mode="half_pixel")
            _check(got, exp)
    if dtype == np.int64:  # nearest never goes through float: exact for huge values
        big = np.array([[[2**62 + 1, -(2**62) - 3, 5]]], np.int64)
        out_shape, sc = K.resize_plan(big.shape, scales=[1.0, 1.0, 2.0])
        out = np.empty(out_shape, np.int64)
        K.resize(big, out, np.array(sc), np.empty(0, np.float32), K.MODE_NEAREST,
                 K.COORD_ASYMMETRIC, K.NEAREST_FLOOR, -0.75, 0, 0.0, 0)
        np.testing.assert_array_equal(out, np.repeat(big, 2, axis=2))


def test_uint8_saturation_rank1_rank5():
    # cubic overshoot must saturate to [0, 255]
    x = np.array([[[0, 255, 0, 255, 255, 0]]], np.uint8)
    got, exp = _ref_and_kernel(x, scales=[1.0, 1.0, 3.0], mode="cubic")
    _check(got, exp)
    assert got.max() == 255 and got.min() == 0
    x1 = RNG.standard_normal(7).astype(np.float32)
    got, exp = _ref_and_kernel(x1, sizes=[12], mode="cubic", exclude_outside=1)
    _check(got, exp, ATOL_CUBIC)
    x5 = RNG.standard_normal((1, 2, 3, 4, 3)).astype(np.float32)
    got, exp = _ref_and_kernel(x5, scales=[1.0, 1.0, 2.0, 0.5, 1.5], mode="linear")
    _check(got, exp)


def test_noncontiguous_input_and_identity():
    x = RNG.standard_normal((3, 8, 6)).astype(np.float32)
    xt = x.transpose(0, 2, 1)  # non-contiguous (3, 6, 8)
    out_shape, sc = K.resize_plan(xt.shape, sizes=[3, 4, 5])
    out = np.empty(out_shape, np.float32)
    roi = np.array(K.expand_roi(3), np.float32)
    K.resize(xt, out, np.array(sc), roi, K.MODE_LINEAR, K.COORD_HALF_PIXEL, 0, -0.75, 0, 0.0, 0)
    got, exp = _ref_and_kernel(np.ascontiguousarray(xt), sizes=[3, 4, 5], mode="linear")
    np.testing.assert_allclose(out, exp, rtol=RTOL, atol=ATOL)
    # all-identity resize is a copy
    out2 = np.empty(x.shape, np.float32)
    K.resize(x, out2, np.ones(3), roi, K.MODE_CUBIC, K.COORD_HALF_PIXEL, 0, -0.75, 0, 0.0, 0)
    np.testing.assert_array_equal(out2, x)


def test_plan():
    assert K.resize_plan((1, 1, 10), scales=[1.0, 1.0, float(np.float32(0.7))]) == \
        ((1, 1, 6), (1.0, 1.0, float(np.float32(0.7))))
    assert K.resize_plan((1, 3, 4, 6), sizes=[8, 8], axes=[2, 3],
                         keep_aspect_ratio_policy="not_larger") == \
        ((1, 3, 5, 8), (1.0, 1.0, 4 / 3, 4 / 3))
    assert K.resize_plan((1, 3, 4, 6), sizes=[8, 8], axes=[2, 3],
                         keep_aspect_ratio_policy="not_smaller")[0] == (1, 3, 8, 12)
    assert K.expand_roi(3, [0.1, 0.2, 0.8, 0.9], axes=[2, 0]) == (0.2, 0.0, 0.1, 0.9, 1.0, 0.8)
    with pytest.raises(ValueError):
        K.resize_plan((2, 2), scales=[1.0, 2.0], sizes=[2, 4])
    with pytest.raises(ValueError):
        K.resize_plan((2, 2), scales=[2.0])
    out = np.empty((0, 3, 2), np.float32)  # empty output: no-op
    K.resize(np.ones((0, 3, 1), np.float32), out, np.array([1.0, 1.0, 2.0]),
             np.empty(0, np.float32), 1, 0, 0, -0.75, 0, 0.0, 0)


def test_upsample_mapping():
    """Upsample-9 nearest with integer scales == np.repeat (the onnx reference);
    Upsample / Resize-10 linear == Resize-19 linear with asymmetric coordinates."""
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    node = helper.make_node("Upsample", ["X", "s"], ["Y"], mode="nearest")
    got = run_node(node, [x, np.array([1, 1, 2, 3], np.float32)], 9)
    np.testing.assert_array_equal(got, np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))
    node7 = helper.make_node("Upsample", ["X"], ["Y"], mode="linear", scales=[1.0, 1.0, 1.5, 2.5])
    got = run_node(node7, [x], 7)
    _, exp = _ref_and_kernel(x, scales=[1.0, 1.0, 1.5, 2.5], mode="linear",
                             coordinate_transformation_mode="asymmetric")
    _check(got, exp)
    node10 = helper.make_node("Resize", ["X", "s"], ["Y"], mode="nearest")
    got = run_node(node10, [x, np.array([1, 1, 0.6, 1.5], np.float32)], 10)
    _, exp = _ref_and_kernel(x, scales=[1, 1, 0.6, 1.5], mode="nearest", nearest_mode="floor",
                             coordinate_transformation_mode="asymmetric")
    _check(got, exp)


def test_nearest_simple_and_tf_half_pixel_for_nn():
    """Codes without an onnx.reference implementation, checked by hand."""
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 5)
    roi = np.empty(0, np.float32)

    def run(scale, coord, nearest):
        shp, sc = K.resize_plan(x.shape, scales=[1.0, 1.0, scale])
        out = np.empty(shp, np.float32)
        K.resize(x, out, np.array(sc), roi, K.MODE_NEAREST, coord, nearest, -0.75, 0, 0.0, 0)
        return out.reshape(-1).tolist()

    # ORT's opset<11 rule: ceil when downscaling, floor when upscaling (x_orig = x / scale)
    assert run(0.6, K.COORD_ASYMMETRIC, K.NEAREST_SIMPLE) == [0, 2, 4]
    assert run(0.6, K.COORD_ASYMMETRIC, K.NEAREST_FLOOR) == [0, 1, 3]
    assert run(1.5, K.COORD_ASYMMETRIC, K.NEAREST_SIMPLE) == [0, 0, 1, 2, 2, 3, 4]
    # Resize-11 tf_half_pixel_for_nn: x_orig = (x + 0.5) / scale, then nearest_mode
    assert run(2.0, K.COORD_TF_HALF_PIXEL_FOR_NN, K.NEAREST_FLOOR) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert run(0.5, K.COORD_TF_HALF_PIXEL_FOR_NN, K.NEAREST_ROUND_PREFER_FLOOR) == [1, 3]
    node = helper.make_node("Resize", ["X", "roi", "s"], ["Y"], mode="nearest",
                            coordinate_transformation_mode="tf_half_pixel_for_nn",
                            nearest_mode="floor")
    got = run_node(node, [x, np.empty(0, np.float32), np.array([1, 1, 2], np.float32)], 11)
    assert got.reshape(-1).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
