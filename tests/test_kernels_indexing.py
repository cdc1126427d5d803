"""Tests for targets/cpu/kernels/indexing.py against onnx.reference and ONNX node cases.

`run_node` below plays the compiler's role: it reads a node's attributes, does the
reshapes / copies documented in the kernel module, calls the kernel and reshapes back.
Dtype signatures are kept few (float32 / int64 / bool data, int64 indices, one int32
indices check) so that cold Numba compilation stays well under a minute.
"""
from __future__ import annotations

import functools
import importlib
import sys
from math import prod
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, defs, helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from targets.cpu.kernels import indexing as K  # noqa: E402

RTOL, ATOL = 1e-3, 1e-7
OPSET = defs.onnx_opset_version()
RNG = np.random.default_rng(0)
F32, I64, BOOL = np.float32, np.int64, np.bool_
_REDUCTION = {"none": 0, "add": 1, "mul": 2, "max": 3, "min": 4}




@pytest.fixture(autouse=True)
def _seed():
    """Reseed per test so each test's data does not depend on which tests ran before."""
    global RNG
    RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- caller helper


def _i64(shape):
    return np.array(shape, dtype=np.int64)


def _c(a):
    return np.ascontiguousarray(a)


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


def _scalar(a):
    return np.asarray(a).reshape(-1)[0]


def _is_low_float(dt):
    return dt.kind == "V" or (dt.kind == "f" and dt.itemsize < 4)


def run_node(node, inputs, opset=OPSET):
    """Run one ONNX node through the kernels; inputs aligned with node.input (None = absent)."""
    low = {a.dtype for a in inputs if a is not None and _is_low_float(a.dtype)}
    if low:  # numba has no bfloat16 / float16: compute in float32, cast back
        inputs = [a.astype(np.float32) if a is not None and _is_low_float(a.dtype) else a
                  for a in inputs]
    outs = _dispatch(node, inputs, opset)
    if len(low) == 1:
        (lt,) = low
        outs = [o.astype(lt) if o.dtype == np.float32 else o for o in outs]
    return outs[: len(node.output)]



def _compiled(node, ins, opset):
    """Run a data-dependent-shape node through compile(): these ops are lowered by the
    compiler (targets/cpu/lower_dynamic.py), so their tests go through the real path."""
    from compiler import compile
    from tests.helpers import model

    feeds = {n: a for n, a in zip(node.input, ins) if n and a is not None}
    inputs = [(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape)) for n, a in feeds.items()]
    if node.op_type == "Unique":
        x = feeds[node.input[0]]
        rank = x.ndim if "axis" in _attrs(node) else 1
        kinds = [(helper.np_dtype_to_tensor_dtype(x.dtype), rank)] + [(TensorProto.INT64, 1)] * 3
    else:
        kinds = [(TensorProto.INT64, 2)]
    outputs = [(o, t, [None] * r) for o, (t, r) in zip(node.output, kinds) if o]
    node = helper.make_node(node.op_type, [n if n in feeds else "" for n in node.input],
                            list(node.output), **_attrs(node))
    got = compile(model([node], inputs, outputs, opset=opset), target="cpu").run(feeds)
    return [got[o] for o in node.output if o]


def _dispatch(node, ins, opset):
    op = node.op_type
    at = _attrs(node)
    ins = list(ins) + [None] * 6  # absent trailing optional inputs

    if op == "Gather":
        data, idx = ins[0], ins[1]
        ax = at.get("axis", 0) % data.ndim
        s = data.shape
        data3 = _c(data).reshape(prod(s[:ax]), s[ax], prod(s[ax + 1:]))
        idx1 = _c(idx).reshape(-1)
        out = np.empty(s[:ax] + idx.shape + s[ax + 1:], data.dtype)
        K.gather(data3, idx1, out.reshape(data3.shape[0], idx1.size, data3.shape[2]))
        return [out]

    if op == "GatherElements":
        data, idx = ins[0], ins[1]
        out = np.empty(idx.shape, data.dtype)
        K.gather_elements(_c(data).reshape(-1), _i64(data.shape), _c(idx).reshape(-1),
                          _i64(idx.shape), out.reshape(-1), int(at.get("axis", 0)))
        return [out]

    if op in ("ScatterElements", "Scatter"):
        data, idx, upd = ins[0], ins[1], ins[2]
        out = np.empty_like(data)
        red = _REDUCTION[_str(at.get("reduction", "none"))]
        K.scatter_elements(_c(data).reshape(-1), _i64(data.shape), _c(idx).reshape(-1),
                           _i64(idx.shape), _c(upd).reshape(-1), out.reshape(-1),
                           int(at.get("axis", 0)), red)
        return [out]

    if op == "GatherND":
        data, idx = ins[0], ins[1]
        b = int(at.get("batch_dims", 0))
        k = idx.shape[-1]
        s = data.shape
        data3 = _c(data).reshape(prod(s[:b]), prod(s[b:b + k]), prod(s[b + k:]))
        idx3 = _c(idx).reshape(prod(idx.shape[:b]), prod(idx.shape[b:-1]), k)
        out = np.empty(idx.shape[:-1] + s[b + k:], data.dtype)
        K.gather_nd(data3, _i64(s[b:b + k]), idx3,
                    out.reshape(idx3.shape[0], idx3.shape[1], data3.shape[2]))
        return [out]

    if op == "ScatterND":
        data, idx, upd = ins[0], ins[1], ins[2]
        k = idx.shape[-1]
        s = data.shape
        data2 = _c(data).reshape(prod(s[:k]), prod(s[k:]))
        idx2 = _c(idx).reshape(prod(idx.shape[:-1]), k)
        out = np.empty_like(data)
        K.scatter_nd(data2, _i64(s[:k]), idx2, _c(upd).reshape(idx2.shape[0], data2.shape[1]),
                     out.reshape(data2.shape), _REDUCTION[_str(at.get("reduction", "none"))])
        return [out]

    if op == "TopK":
        x = ins[0]
        k = int(at["k"]) if "k" in at else int(_scalar(ins[1]))
        ax = at.get("axis", -1) % x.ndim
        xt = np.moveaxis(x, ax, -1)
        n = xt.shape[-1]
        x2 = _c(xt).reshape(prod(xt.shape[:-1]), n)
        vals = np.empty((x2.shape[0], k), x.dtype)
        inds = np.empty((x2.shape[0], k), np.int64)
        K.topk(x2, k, bool(at.get("largest", 1)), bool(at.get("sorted", 1)), vals, inds)
        shp = xt.shape[:-1] + (k,)
        return [np.moveaxis(vals.reshape(shp), -1, ax), np.moveaxis(inds.reshape(shp), -1, ax)]

    if op in ("ArgMax", "ArgMin"):
        x = ins[0]
        ax = at.get("axis", 0) % x.ndim
        s = x.shape
        x3 = _c(x).reshape(prod(s[:ax]), s[ax], prod(s[ax + 1:]))
        out = np.empty((x3.shape[0], x3.shape[2]), np.int64)
        K.arg_reduce(x3, out, op == "ArgMax", bool(at.get("select_last_index", 0)))
        shp = s[:ax] + ((1,) if at.get("keepdims", 1) else ()) + s[ax + 1:]
        return [out.reshape(shp)]

    if op in ("CumSum", "CumProd"):
        x = ins[0]
        ax = int(_scalar(ins[1])) % x.ndim
        s = x.shape
        x3 = _c(x).reshape(prod(s[:ax]), s[ax], prod(s[ax + 1:]))
        out = np.empty_like(x)
        K.cumulative(x3, out.reshape(x3.shape), bool(at.get("exclusive", 0)),
                     bool(at.get("reverse", 0)), op == "CumProd")
        return [out]

    if op == "Trilu":
        x = ins[0]
        k = int(_scalar(ins[1])) if ins[1] is not None else 0
        x3 = _c(x).reshape(prod(x.shape[:-2]), x.shape[-2], x.shape[-1])
        out = np.empty_like(x)
        K.trilu(x3, out.reshape(x3.shape), k, bool(at.get("upper", 1)))
        return [out]

    if op == "OneHot":
        idx, depth, values = ins[0], int(_scalar(ins[1])), ins[2]
        ax = at.get("axis", -1) % (idx.ndim + 1)
        s = idx.shape
        out = np.empty(s[:ax] + (depth,) + s[ax:], values.dtype)
        vals = values.reshape(-1)
        K.one_hot(_c(idx).reshape(-1), depth, vals[0], vals[1],
                  out.reshape(prod(s[:ax]), depth, prod(s[ax:])))
        return [out]

    if op == "ReverseSequence":
        x, lens = ins[0], ins[1]
        x3 = _c(x).reshape(x.shape[0], x.shape[1], prod(x.shape[2:]))
        out = np.empty_like(x)
        K.reverse_sequence(x3, _c(lens), out.reshape(x3.shape), int(at.get("batch_axis", 1)),
                           int(at.get("time_axis", 0)))
        return [out]

    if op in ("NonMaxSuppression", "Unique"):
        return _compiled(node, ins, opset)

    raise NotImplementedError(op)


# --------------------------------------------------------------------------- comparison


def _assert_same(got, exp, what=""):
    exp = np.asarray(exp)
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != {exp.shape}"
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != {exp.dtype}"
    if exp.dtype.kind in "fcV":
        np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64),
                                   rtol=RTOL, atol=ATOL, err_msg=what)
    else:
        np.testing.assert_array_equal(got, exp, err_msg=what)


def ref_check(op, inputs, n_out=1, opset=OPSET, ref_attrs=None, ref_op=None, **attrs):
    """Build a single-node model, run onnx.reference and the kernels, compare all outputs.

    ref_attrs / ref_op override the reference model's attributes / op type only (to
    dodge onnx.reference bugs or missing implementations).
    """
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **attrs)
    ref_node = helper.make_node(ref_op or op, names, outs, **{**attrs, **(ref_attrs or {})})
    vi = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
          for n, a in zip(names, inputs) if a is not None]
    ovi = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs]
    model = helper.make_model(helper.make_graph([ref_node], "g", vi, ovi),
                              opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: a for n, a in zip(names, inputs) if a is not None}
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = run_node(node, inputs, opset)
    for i, (g, e) in enumerate(zip(got, expected)):
        _assert_same(g, e, f"{op} {attrs} output {i}")
    return got


def _rand(shape, dtype, lo=-5, hi=5):
    if dtype == np.bool_:
        return RNG.random(shape) < 0.5
    if np.dtype(dtype).kind == "f":
        return RNG.uniform(lo, hi, shape).astype(dtype)
    if np.dtype(dtype).kind == "u":
        lo = 0
    return RNG.integers(lo, hi, shape).astype(dtype)


def _rand_idx(shape, n, dtype=I64):
    """Indices in [-n, n) so negative indices are always exercised."""
    return RNG.integers(-n, n, shape).astype(dtype)


SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]
DTYPES = [F32, I64, BOOL]
NUM_DTYPES = [F32, I64]


# --------------------------------------------------------------------------- reference tests


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_gather(shape, dtype):
    x = _rand(shape, dtype)
    for axis in range(-len(shape), len(shape)):
        n = shape[axis]
        for ishape in [(), (3,), (2, 2)]:
            ref_check("Gather", [x, _rand_idx(ishape, n)], axis=axis)


def test_gather_int32_indices_and_errors():
    x = _rand((3, 4), F32)
    ref_check("Gather", [x, _rand_idx((2, 3), 4, np.int32)], axis=-1)
    out = np.empty((1, 1, 1), F32)
    with pytest.raises(IndexError):
        K.gather(x.reshape(1, 3, 4)[:, :, :1].copy(), np.array([3], np.int64), out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_gather_elements(shape, dtype):
    x = _rand(shape, dtype)
    for axis in range(-len(shape), len(shape)):
        ishape = list(shape)
        ishape[axis] = 3  # may be larger or smaller than data along the axis
        # onnx.reference's GatherElements mishandles negative axes: give it axis % rank
        ref_check("GatherElements", [x, _rand_idx(tuple(ishape), shape[axis])], axis=axis,
                  ref_attrs={"axis": axis % len(shape)})


def test_gather_elements_smaller_indices():
    # the spec allows indices smaller than data in every dim; onnx.reference rejects
    # that, so compare with a direct numpy loop.
    x = _rand((3, 4, 5), F32)
    idx = _rand_idx((2, 3, 2), 4)
    out = np.empty(idx.shape, F32)
    K.gather_elements(x.reshape(-1), _i64(x.shape), idx.reshape(-1), _i64(idx.shape),
                      out.reshape(-1), -2)
    exp = np.empty_like(out)
    for i, j, k in np.ndindex(idx.shape):
        exp[i, j, k] = x[i, idx[i, j, k] % 4, k]
    np.testing.assert_array_equal(out, exp)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_scatter_elements(shape, dtype):
    x = _rand(shape, dtype)
    for axis in range(-len(shape), len(shape)):
        ishape = tuple(min(2, d) for d in shape)  # smaller than data in every dim
        n = shape[axis]
        idx = _rand_idx(ishape, n)
        upd = _rand(ishape, dtype)
        reds = ["none", "add", "mul", "max", "min"] if dtype != BOOL else ["none", "max"]
        for red in reds:
            ref_check("ScatterElements", [x, idx, upd], axis=axis, reduction=red)


def test_scatter_deprecated_alias():
    x = _rand((3, 4), F32)
    idx = _rand_idx((2, 4), 3)
    # onnx.reference has no Scatter implementation: it is ScatterElements without reduction
    ref_check("Scatter", [x, idx, _rand((2, 4), F32)], opset=10, ref_op="ScatterElements",
              axis=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_nd(dtype):
    cases = [((4,), (3, 1), 0), ((3, 4), (2, 2), 0), ((3, 4), (2, 5, 1), 0),
             ((2, 3, 4), (2, 2), 0), ((2, 3, 4), (2, 1), 1), ((2, 3, 4), (2, 5, 2), 1),
             ((2, 3, 4, 2), (2, 3, 1), 2), ((2, 3, 4), (3, 3), 0)]
    for dshape, ishape, b in cases:
        x = _rand(dshape, dtype)
        k = ishape[-1]
        idx = np.empty(ishape, I64)
        for q in range(k):
            n = dshape[b + q]
            idx[..., q] = RNG.integers(-n, n, ishape[:-1])
        ref_check("GatherND", [x, idx], batch_dims=b)
    # k == 0 (indices.shape[-1] == 0): every index tuple selects all of data;
    # onnx.reference cannot reshape that case, so compare with numpy broadcasting.
    x = _rand((2, 3), dtype)
    node = helper.make_node("GatherND", ["x", "i"], ["y"])
    (got,) = run_node(node, [x, np.zeros((4, 0), I64)])
    np.testing.assert_array_equal(got, np.broadcast_to(x, (4, 2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_nd(dtype):
    cases = [((5,), (3, 1)), ((3, 4), (2, 2)), ((3, 4), (2, 1)), ((2, 3, 4), (2, 2, 1)),
             ((2, 3, 4), (4, 3)), ((2, 3, 4), (1, 2))]
    for dshape, ishape in cases:
        x = _rand(dshape, dtype)
        k = ishape[-1]
        idx = np.empty(ishape, I64)
        for q in range(k):
            n = dshape[q]
            idx[..., q] = RNG.integers(-n, n, ishape[:-1])
        upd = _rand(ishape[:-1] + dshape[k:], dtype)
        reds = ["none", "add", "mul", "max", "min"] if dtype != BOOL else ["none"]
        for red in reds:
            ref_check("ScatterND", [x, idx, upd], reduction=red)


@pytest.mark.parametrize("dtype", NUM_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_topk(shape, dtype):
    x = _rand(shape, dtype, -3, 3)  # narrow range -> many ties
    for axis in range(-len(shape), len(shape)):
        n = shape[axis]
        for k in sorted({0, 1, n // 2, n}):
            for largest in (0, 1):
                ref_check("TopK", [x, np.array([k], I64)], n_out=2, axis=axis,
                          largest=largest, sorted=1)
        ref_check("TopK", [x, np.array([n], I64)], n_out=2, axis=axis, sorted=0)


def test_topk_nan_and_bigger():
    x = _rand((3, 40), F32, -2, 2).round()
    x[0, [3, 7, 20]] = np.nan
    x[2, :] = np.nan
    for k in (1, 5, 39, 40):
        for largest in (0, 1):
            ref_check("TopK", [x, np.array([k], I64)], n_out=2, largest=largest)


@pytest.mark.parametrize("dtype", NUM_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_arg_reduce(shape, dtype):
    x = _rand(shape, dtype, -2, 2)  # ties
    for op in ("ArgMax", "ArgMin"):
        for axis in range(-len(shape), len(shape)):
            for keepdims in (0, 1):
                for last in (0, 1):
                    ref_check(op, [x], axis=axis, keepdims=keepdims, select_last_index=last)


def test_arg_reduce_nan():
    x = _rand((3, 6, 2), F32, -2, 2).round()
    x[0, 2, 0] = x[0, 4, 0] = np.nan
    x[1, :, 1] = np.nan
    x[2, 5, 0] = np.nan
    for op in ("ArgMax", "ArgMin"):
        for last in (0, 1):
            ref_check(op, [x], axis=1, keepdims=0, select_last_index=last)


@pytest.mark.parametrize("dtype", NUM_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cumulative(shape, dtype):
    x = _rand(shape, dtype, -3, 4)
    for op in ("CumSum", "CumProd"):
        for axis in range(-len(shape), len(shape)):
            for excl in (0, 1):
                for rev in (0, 1):
                    ref_check(op, [x, np.array(axis, I64)], exclusive=excl, reverse=rev)


@pytest.mark.parametrize("dtype", DTYPES)
def test_trilu(dtype):
    for shape in [(3, 4), (4, 3), (2, 3, 3), (2, 1, 2, 5)]:
        x = _rand(shape, dtype)
        for upper in (0, 1):
            ref_check("Trilu", [x], upper=upper)
            for k in (-5, -1, 0, 2, 6):
                ref_check("Trilu", [x, np.array(k, I64)], upper=upper)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot(dtype):
    depth = 4
    for ishape in [(), (5,), (2, 3), (2, 1, 3)]:
        idx = RNG.integers(-depth - 2, depth + 2, ishape).astype(I64)  # incl. out of range
        values = np.array([0, 1] if dtype == BOOL else [2, 7], dtype)
        for axis in range(-len(ishape) - 1, len(ishape) + 1):
            if dtype == BOOL:  # onnx.reference computes on - off, which numpy rejects for bool
                node = helper.make_node("OneHot", ["i", "d", "v"], ["y"], axis=axis)
                (got,) = run_node(node, [idx, np.array(depth, I64), values])
                (exp,) = ref_check("OneHot", [idx, np.array(depth, I64), values.astype(I64)],
                                   axis=axis)
                _assert_same(got, exp.astype(BOOL), "OneHot bool")
            else:
                ref_check("OneHot", [idx, np.array(depth, I64), values], axis=axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reverse_sequence(dtype):
    for shape in [(4, 3), (4, 3, 2), (3, 4, 2, 2)]:
        x = _rand(shape, dtype)
        for batch_axis, time_axis in ((0, 1), (1, 0)):
            nb, nt = shape[batch_axis], shape[time_axis]
            lens = RNG.integers(1, nt + 1, nb).astype(I64)
            ref_check("ReverseSequence", [x, lens], batch_axis=batch_axis, time_axis=time_axis)


@pytest.mark.parametrize("dtype", [F32, I64, BOOL])
def test_unique(dtype):
    x = _rand((4, 3, 2), dtype, -2, 2)
    x[:, 2] = x[:, 0]  # duplicate slices along axis 1
    x[3] = x[1]  # duplicate slices along axis 0
    ref_check("Unique", [x], n_out=4, sorted=1)
    ref_check("Unique", [x.reshape(-1)], n_out=4, sorted=0)
    for axis in (0, 1, -1, -3):
        ref_check("Unique", [x], n_out=4, sorted=1, axis=axis)
    ref_check("Unique", [x], n_out=4, sorted=0, axis=0)
    # onnx.reference's sorted=0 path is only right for 1-D input or axis 0 (it takes
    # along axis 0 of the unflattened input); check the other cases by their invariants.
    for axis in (None, 1, 2, -1):
        kw = {} if axis is None else {"axis": axis}
        node = helper.make_node("Unique", ["x"], ["y", "i", "v", "c"], sorted=0, **kw)
        y, first, inv, cnt = run_node(node, [x])
        xa, ya = (x.reshape(-1), y) if axis is None else (np.moveaxis(x, axis, 0),
                                                          np.moveaxis(y, axis, 0))
        assert np.all(np.diff(first) > 0)  # order of first occurrence
        np.testing.assert_array_equal(ya, xa[first])
        np.testing.assert_array_equal(ya[inv], xa)
        np.testing.assert_array_equal(cnt, np.bincount(inv, minlength=len(first)))


def test_unique_nan():
    x = np.array([2.0, np.nan, 1.0, np.nan, 2.0, -0.0, 0.0], F32)
    ref_check("Unique", [x], n_out=4, sorted=1)


def test_nonmax_suppression_random():
    nb, nbox, ncls = 2, 30, 3
    yx = RNG.uniform(0, 10, (nb, nbox, 2)).astype(F32)
    hw = RNG.uniform(0.5, 4, (nb, nbox, 2)).astype(F32)
    boxes = np.concatenate([yx, yx + hw], axis=-1)
    scores = RNG.random((nb, ncls, nbox)).astype(F32)
    scores[0, 0, 5] = scores[0, 0, 9]  # tie
    for mo, iou, st in [(5, 0.3, 0.2), (100, 0.5, None), (0, 0.5, 0.1), (3, 0.0, None)]:
        ins = [boxes, scores, np.array([mo], I64), np.array([iou], F32),
               None if st is None else np.array([st], F32)]
        ref_check("NonMaxSuppression", ins)
    ctr = np.concatenate([yx + hw / 2, hw], axis=-1)
    ref_check("NonMaxSuppression", [ctr, scores, np.array([10], I64), np.array([0.4], F32),
                                    np.array([0.0], F32)], center_point_box=1)


# --------------------------------------------------------------------------- official cases

OFFICIAL_OPS = {"Gather", "GatherElements", "ScatterElements", "Scatter", "GatherND",
                "ScatterND", "TopK", "ArgMax", "ArgMin", "CumSum", "CumProd", "Trilu",
                "OneHot", "ReverseSequence", "NonMaxSuppression", "Unique"}
_OFFICIAL_MODULES = ["gather", "gatherelements", "scatterelements", "scatter", "gathernd",
                     "scatternd", "topk", "argmax", "argmin", "cumsum", "cumprod", "trilu",
                     "onehot", "reversesequence", "nonmaxsuppression", "unique"]
# Official cases this kernel set cannot match (name -> reason); none so far.
OFFICIAL_XFAIL: dict[str, str] = {}


@functools.lru_cache(maxsize=1)
def _official_cases():
    """Official node cases for OFFICIAL_OPS (single-node models only).

    collect_testcases() imports every case module (~12-15 s, it generates data for all
    ops); the cases are registered at import time, so importing just our ops' modules
    yields the same TestCase objects.  Falls back to collect_testcases() when the
    private registry is not available.
    """
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
        if len(g.node) == 1 and g.node[0].op_type in OFFICIAL_OPS:
            out.setdefault(c.name, c)
    return out


def _opset(model):
    for oi in model.opset_import:
        if oi.domain in ("", "ai.onnx"):
            return oi.version
    return OPSET


def test_official_cases_cover_all_ops():
    found = {c.model.graph.node[0].op_type for c in _official_cases().values()}
    assert found == OFFICIAL_OPS


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
        assert len(got) >= len(outputs)
        for i, (g, e) in enumerate(zip(got, outputs)):
            e = np.asarray(e)
            assert g.shape == e.shape, f"output {i}: {g.shape} != {e.shape}"
            assert g.dtype == e.dtype, f"output {i}: {g.dtype} != {e.dtype}"
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64),
                                       rtol=case.rtol or RTOL, atol=case.atol or ATOL)
