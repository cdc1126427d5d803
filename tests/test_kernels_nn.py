"""Tests for the Numba NN kernels (targets/cpu/kernels/nn.py) and compiler/spatial.py.

Oracle: onnx.reference.ReferenceEvaluator on a single-node model.  Where the reference
is known to be wrong (listed at each use) the oracle is onnxruntime (skipped when it is
not installed) or a direct numpy formula.  The official ONNX node conformance cases for
the covered ops are replayed too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from compiler.spatial import (  # noqa: E402
    conv_geometry,
    conv_transpose_geometry,
    pool_geometry,
)
from targets.cpu.kernels import nn  # noqa: E402

OPSET = 22
DTYPES = [np.float32, np.float64]
_ONNX_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


# --------------------------------------------------------------------------- helpers


def _to5(a: np.ndarray) -> np.ndarray:
    """View an (N, C, *spatial) array as (N, C, D, H, W) by inserting leading size-1 spatial dims."""
    nsp = a.ndim - 2
    return a.reshape(a.shape[:2] + (1,) * (3 - nsp) + a.shape[2:])


def _p3(values, nsp: int, fill: int) -> tuple[int, int, int]:
    """Spatial parameter (None or nsp ints) padded at the front to 3 ints for the kernels."""
    if values is None or len(values) == 0:
        values = [fill] * nsp
    return (fill,) * (3 - nsp) + tuple(int(v) for v in values)


def run_kernel(op: str, inputs: list, attrs: dict, n_outputs: int = 1) -> list[np.ndarray]:
    """Run one ONNX op through the nn kernels: geometry via compiler/spatial, alloc out, 5-D views."""
    x = np.ascontiguousarray(inputs[0])
    nsp = x.ndim - 2
    strides = attrs.get("strides")
    dilations = attrs.get("dilations")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if op in ("Conv", "ConvTranspose"):
        w = np.ascontiguousarray(inputs[1])
        group = int(attrs.get("group", 1))
        kernel = attrs.get("kernel_shape") or w.shape[2:]
        m = w.shape[0] if op == "Conv" else w.shape[1] * group
        b = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros(m, x.dtype)
        b = np.ascontiguousarray(b, dtype=x.dtype)
        if op == "Conv":
            pb, _, osp = conv_geometry(x.shape[2:], kernel, strides, dilations, attrs.get("pads"), auto_pad)
            fn = nn.conv
        else:
            pb, _, osp = conv_transpose_geometry(
                x.shape[2:], kernel, strides, dilations, attrs.get("pads"), auto_pad,
                attrs.get("output_padding"), attrs.get("output_shape"))
            fn = nn.conv_transpose
        out = np.empty((x.shape[0], m) + osp, x.dtype)
        fn(_to5(x), _to5(w), b, _to5(out), _p3(strides, nsp, 1), _p3(pb, nsp, 0),
           _p3(dilations, nsp, 1), group)
        return [out]
    if op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = attrs["kernel_shape"]
        pb, pe, osp = pool_geometry(x.shape[2:], kernel, strides, dilations, attrs.get("pads"),
                                    auto_pad, int(attrs.get("ceil_mode", 0)))
        out = np.empty(x.shape[:2] + osp, x.dtype)
        k3, s3, pb3, d3 = _p3(kernel, nsp, 1), _p3(strides, nsp, 1), _p3(pb, nsp, 0), _p3(dilations, nsp, 1)
        if op == "MaxPool":
            if n_outputs > 1:
                idx = np.empty(out.shape, np.int64)
                idx5 = _to5(idx)
            else:
                idx = idx5 = np.empty((0, 0, 0, 0, 0), np.int64)
            nn.max_pool(_to5(x), _to5(out), idx5, k3, s3, pb3, d3, int(attrs.get("storage_order", 0)))
            return [out, idx][:n_outputs]
        if op == "AveragePool":
            nn.avg_pool(_to5(x), _to5(out), k3, s3, pb3, _p3(pe, nsp, 0), d3,
                        int(attrs.get("count_include_pad", 0)))
        else:
            nn.lp_pool(_to5(x), _to5(out), k3, s3, pb3, d3, int(attrs.get("p", 2)))
        return [out]
    n, c = x.shape[:2]
    x3 = x.reshape(n, c, -1)
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        out = np.empty((n, c) + (1,) * nsp, x.dtype)
        nn.global_pool(x3, out.reshape(n, c), op == "GlobalMaxPool")
        return [out]
    out = np.empty_like(x)
    if op == "LRN":
        nn.lrn(x3, out.reshape(x3.shape), int(attrs["size"]), float(attrs.get("alpha", 1e-4)),
               float(attrs.get("beta", 0.75)), float(attrs.get("bias", 1.0)))
        return [out]
    if op == "InstanceNormalization":
        scale = np.ascontiguousarray(inputs[1], dtype=x.dtype)
        bias = np.ascontiguousarray(inputs[2], dtype=x.dtype)
        nn.instance_norm(x3, scale, bias, out.reshape(x3.shape), float(attrs.get("epsilon", 1e-5)))
        return [out]
    raise NotImplementedError(op)


def make_model(op: str, inputs: list, n_outputs: int = 1, **attrs) -> onnx.ModelProto:
    """Single-node model; inputs are numpy arrays (or None for an omitted optional input)."""
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = ["out0", "out1"][:n_outputs]
    node = helper.make_node(op, names, outs, **attrs)
    vis = [helper.make_tensor_value_info(nm, _ONNX_TYPE[a.dtype], a.shape)
           for nm, a in zip(names, inputs) if a is not None]
    out_types = [_ONNX_TYPE[inputs[0].dtype], TensorProto.INT64][:n_outputs]
    ovis = [helper.make_tensor_value_info(nm, t, None) for nm, t in zip(outs, out_types)]
    graph = helper.make_graph([node], "g", vis, ovis)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _feeds(model, inputs) -> dict:
    names = [n for n in model.graph.node[0].input if n]
    return dict(zip(names, [a for a in inputs if a is not None]))


def oracle_reference(model, inputs):
    return ReferenceEvaluator(model).run(None, _feeds(model, inputs))


def oracle_ort(model, inputs):
    if inputs[0].dtype != np.float32:
        pytest.skip("onnxruntime pooling kernels are float32 only; float64 is covered by reference cases")
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, _feeds(model, inputs))


def _tol(dtype):
    return dict(rtol=1e-3, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-7, atol=1e-9)


def check(op, inputs, n_outputs=1, oracle=oracle_reference, **attrs):
    """Compare the kernel with the oracle on a single-node model built from attrs."""
    model = make_model(op, inputs, n_outputs, **attrs)
    expected = oracle(model, inputs)
    got = run_kernel(op, inputs, _attrs(model.graph.node[0]), n_outputs)
    for e, g in zip(expected, got):
        assert g.shape == e.shape, (g.shape, e.shape)
        if g.dtype == np.int64:
            np.testing.assert_array_equal(g, e)
        else:
            assert g.dtype == inputs[0].dtype
            np.testing.assert_allclose(g, e, **_tol(inputs[0].dtype))


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- Conv

CONV_CASES = [
    # x shape, w shape, attrs, with bias
    ((2, 4, 11), (6, 4, 3), dict(strides=[2], pads=[1, 2], dilations=[2]), True),
    ((1, 3, 9), (4, 3, 4), dict(auto_pad="SAME_UPPER", strides=[2]), False),
    ((2, 4, 9, 10), (6, 2, 3, 3), dict(group=2, strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2]), True),
    ((1, 4, 8, 7), (4, 1, 3, 3), dict(group=4, auto_pad="SAME_UPPER", strides=[2, 2]), True),
    ((1, 3, 9, 8), (5, 3, 4, 3), dict(auto_pad="SAME_LOWER", strides=[2, 2], dilations=[2, 1]), True),
    ((1, 3, 9, 8), (5, 3, 2, 3), dict(auto_pad="VALID", strides=[3, 2]), False),
    ((2, 8, 5, 6), (4, 8, 1, 1), dict(), True),  # pointwise fast path
    ((2, 8, 5, 6), (6, 4, 1, 1), dict(group=2), True),  # pointwise, grouped
    ((1, 8, 7, 6), (4, 8, 1, 1), dict(strides=[2, 2]), True),  # 1x1 strided: im2col path
    ((1, 3, 21, 22), (4, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 2, 3]), True),  # a ResNet-style stem
    # float32 im2col into panels: rows of 16+ outputs (vector copies at stride 2 and 1), panels across rows
    ((1, 3, 40, 36), (8, 3, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), True),
    ((1, 2, 8, 20), (4, 2, 3, 5), dict(), False),
    ((1, 3, 5, 6, 7), (4, 3, 2, 3, 2), dict(strides=[1, 2, 1], pads=[1, 0, 1, 0, 1, 1], dilations=[2, 1, 1]), True),
    ((2, 6, 4, 5, 4), (3, 2, 3, 1, 2), dict(group=3, auto_pad="SAME_LOWER"), True),
    # H/W stride 1 with wide enough rows: the padded-copy "wide" im2col path
    ((2, 4, 6, 24), (6, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1]), True),
    ((1, 3, 7, 30), (4, 3, 3, 2), dict(dilations=[2, 2], pads=[0, 1, 2, 0]), False),
    ((1, 2, 7, 4, 20), (3, 2, 2, 3, 3), dict(strides=[2, 1, 1], pads=[1, 1, 1, 2, 1, 1], dilations=[2, 1, 1]), True),
    ((2, 3, 16), (4, 3, 3), dict(auto_pad="SAME_UPPER"), True),
    # float32 implicit GEMM: phase images (stride 2 split by vector shuffles, odd pads; stride 3's
    # nine phases with dilation), the image batch reusing its border
    ((2, 5, 38, 41), (8, 5, 3, 3), dict(strides=[2, 2], pads=[0, 1, 1, 0]), True),
    ((1, 4, 17, 19), (6, 4, 4, 4), dict(strides=[3, 3], dilations=[1, 2], pads=[2, 2, 1, 1]), False),
    ((2, 10, 10, 12), (10, 5, 3, 3), dict(group=2, strides=[2, 1], pads=[1, 1, 1, 1]), True),   # per group
    ((1, 10, 6, 7), (10, 5, 1, 1), dict(group=2), True),     # 1x1 read in place, per group
    ((1, 4, 9, 9), (8, 4, 5, 5), dict(dilations=[3, 3], pads=[3, 3, 3, 3]), True),   # too many dropped columns: im2col
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,attrs,bias", CONV_CASES)
def test_conv(xs, ws, attrs, bias, dtype):
    rng = np.random.default_rng(0)
    inputs = [_rand(rng, xs, dtype), _rand(rng, ws, dtype)]
    inputs.append(_rand(rng, (ws[0],), dtype) if bias else None)
    check("Conv", inputs, **attrs)


# -------------------------------------------------------------------- ConvTranspose


def _ref_conv_transpose_grouped(model, inputs):
    """onnx.reference ConvTranspose is wrong for group > 1 (mixes groups/bias): run it per group."""
    node = model.graph.node[0]
    attrs = _attrs(node)
    group = attrs.pop("group")
    x, w, b = inputs
    cg, mg = x.shape[1] // group, w.shape[1]
    parts = []
    for g in range(group):
        sub = [x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg], b[g * mg:(g + 1) * mg]]
        parts.append(oracle_reference(make_model("ConvTranspose", sub, **attrs), sub)[0])
    return [np.concatenate(parts, axis=1)]


CONVT_CASES = [
    ((1, 3, 5), (3, 2, 3), dict(strides=[2], pads=[1, 0], output_padding=[1]), True),
    ((2, 2, 4, 3), (2, 3, 3, 2), dict(strides=[2, 3], dilations=[2, 1], pads=[1, 0, 0, 1], output_padding=[1, 0]), True),
    ((1, 2, 3, 4), (2, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER"), True),
    ((1, 2, 3, 4), (2, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER"), False),
    ((1, 2, 3, 4), (2, 2, 3, 3), dict(strides=[2, 2], auto_pad="VALID"), True),
    # output_shape: with SAME_* the pads come from the ONNX total_padding formula
    ((1, 2, 3, 3), (2, 1, 3, 3), dict(strides=[2, 2], output_shape=[6, 5], auto_pad="SAME_UPPER"), True),
    ((1, 2, 3, 3), (2, 1, 3, 3), dict(strides=[2, 2], output_shape=[6, 5], auto_pad="SAME_LOWER"), True),
    # output_shape with NOTSET: only total_padding <= 0 here (onnx.reference uses pads=0, the
    # spec splits a positive total; for total <= 0 both agree on pads_begin = 0)
    ((1, 2, 3, 3), (2, 3, 3, 3), dict(strides=[3, 2], output_shape=[10, 8]), True),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), dict(strides=[1, 2, 2], pads=[0, 1, 0, 1, 0, 1]), True),
    ((1, 3, 6), (3, 1, 1), dict(), True),  # 1x1 kernel
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,attrs,bias", CONVT_CASES)
def test_conv_transpose(xs, ws, attrs, bias, dtype):
    rng = np.random.default_rng(1)
    inputs = [_rand(rng, xs, dtype), _rand(rng, ws, dtype)]
    inputs.append(_rand(rng, (ws[1],), dtype) if bias else None)
    check("ConvTranspose", inputs, **attrs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,attrs", [
    ((2, 4, 3, 3), (4, 2, 3, 3), dict(group=2, strides=[2, 1], pads=[1, 0, 0, 1])),
    ((1, 6, 5), (6, 1, 2), dict(group=3, strides=[2], output_padding=[1])),
    ((1, 4, 2, 3, 2), (4, 3, 2, 2, 2), dict(group=2, strides=[1, 2, 2], dilations=[1, 1, 2])),
])
def test_conv_transpose_groups(xs, ws, attrs, dtype):
    rng = np.random.default_rng(2)
    inputs = [_rand(rng, xs, dtype), _rand(rng, ws, dtype), _rand(rng, (ws[1] * attrs["group"],), dtype)]
    check("ConvTranspose", inputs, oracle=_ref_conv_transpose_grouped, **attrs)


# -------------------------------------------------------------------------- MaxPool

# onnx.reference MaxPool: with all strides and dilations 1 it takes an older code path whose
# Indices are wrong (no n/c offset, storage_order ignored) and which crashes on 1-D/3-D pads;
# its SAME_LOWER is wrong too.  Those cases use onnxruntime as the oracle.
REF, ORT = oracle_reference, oracle_ort
MAXPOOL_CASES = [
    ((2, 3, 9, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), 0, REF),
    ((2, 3, 9, 8), dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1]), 1, REF),
    ((1, 2, 7, 8), dict(kernel_shape=[2, 3], dilations=[2, 2]), 1, REF),
    ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 2, 3], strides=[2, 2, 1], pads=[0, 1, 1, 1, 0, 1]), 0, REF),
    ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 2, 3], strides=[2, 1, 2], dilations=[1, 2, 1]), 1, REF),
    ((2, 3, 12), dict(kernel_shape=[3], strides=[2], pads=[1, 1]), 0, REF),
    ((2, 3, 12), dict(kernel_shape=[3], strides=[2], pads=[1, 1]), 1, REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), 0, REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_UPPER"), 0, REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_LOWER"), 0, ORT),
    ((1, 2, 7, 9), dict(kernel_shape=[3, 2], strides=[2, 3], auto_pad="VALID"), 0, REF),
    # SAME with stride > window: the total pad (-1 here) is clamped at 0 (onnxruntime, TF);
    # onnx.reference floor-divides it into pads_begin = -1 and shifts the windows.
    ((1, 2, 7, 9), dict(kernel_shape=[3, 2], strides=[2, 3], auto_pad="SAME_UPPER"), 0, ORT),
    ((1, 2, 5, 6), dict(kernel_shape=[2, 2], pads=[1, 1, 1, 1]), 0, ORT),
    ((1, 2, 5, 6), dict(kernel_shape=[2, 2], pads=[1, 1, 1, 1]), 1, ORT),
    ((1, 2, 4, 5, 3), dict(kernel_shape=[2, 2, 2], pads=[1, 0, 1, 0, 1, 1]), 1, ORT),
    ((2, 3, 10), dict(kernel_shape=[3], pads=[1, 1]), 0, ORT),
    ((1, 1, 7), dict(kernel_shape=[3], strides=[3], ceil_mode=1), 0, ORT),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,attrs,storage_order,oracle", MAXPOOL_CASES)
def test_max_pool(xs, attrs, storage_order, oracle, dtype):
    rng = np.random.default_rng(3)
    x = _rand(rng, xs, dtype)
    check("MaxPool", [x], n_outputs=2, oracle=oracle, storage_order=storage_order, **attrs)


def test_max_pool_no_indices_and_nan():
    x = np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5)
    x[0, 1, 2, 2] = np.nan  # a NaN never replaces an earlier value (onnx.reference/onnxruntime)
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    check("MaxPool", [x], n_outputs=1, **attrs)


# ---------------------------------------------------------------------- AveragePool

# onnx.reference AveragePool with ceil_mode shifts the windows when the extra right padding
# needed is >= 2 (stride >= 3): those cases use onnxruntime.
AVGPOOL_CASES = [
    ((2, 3, 9, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), REF),
    ((2, 3, 9, 8), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 2, 1], count_include_pad=1), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, count_include_pad=1), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1, count_include_pad=1), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_UPPER"), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_LOWER", count_include_pad=1), REF),
    ((1, 2, 7, 9), dict(kernel_shape=[3, 2], strides=[2, 3], auto_pad="VALID"), REF),
    ((2, 3, 12), dict(kernel_shape=[4], strides=[2], pads=[2, 1], count_include_pad=1), REF),
    ((2, 3, 12), dict(kernel_shape=[3], strides=[1], pads=[1, 1]), REF),
    ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 2, 3], strides=[2, 1, 2], pads=[1, 0, 1, 1, 1, 0]), REF),
    ((1, 1, 6, 6, 6), dict(kernel_shape=[2, 2, 2], dilations=[2, 2, 2], strides=[1, 1, 1]), REF),
    ((1, 1, 7, 6, 7), dict(kernel_shape=[2, 2, 2], dilations=[2, 1, 2], strides=[2, 2, 2], pads=[1, 1, 0, 0, 1, 1], ceil_mode=1), REF),
    ((1, 1, 7, 6, 7), dict(kernel_shape=[2, 2, 2], dilations=[2, 1, 2], strides=[2, 2, 2], pads=[1, 1, 0, 0, 1, 1], ceil_mode=1, count_include_pad=1), REF),
    ((1, 1, 7), dict(kernel_shape=[3], strides=[3], ceil_mode=1), ORT),
    ((1, 1, 7), dict(kernel_shape=[3], strides=[3], pads=[1, 1], ceil_mode=1, count_include_pad=1), ORT),
    ((1, 2, 10, 11), dict(kernel_shape=[3, 2], strides=[4, 3], pads=[1, 0, 0, 1], ceil_mode=1), ORT),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,attrs,oracle", AVGPOOL_CASES)
def test_avg_pool(xs, attrs, oracle, dtype):
    rng = np.random.default_rng(4)
    check("AveragePool", [_rand(rng, xs, dtype)], oracle=oracle, **attrs)


# --------------------------------------------------------------------------- LpPool

# onnx.reference LpPool = kernel_size * mean over the padded-extent window: differs from
# sum(|x|^p) only for ceil_mode windows cut short by the end; those use onnxruntime.
LPPOOL_CASES = [
    ((2, 3, 9, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], p=2), REF),
    ((2, 3, 12), dict(kernel_shape=[3], strides=[2], pads=[1, 0], p=3), REF),
    ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 2, 3], strides=[2, 1, 2], p=1), REF),
    ((1, 1, 6, 6), dict(kernel_shape=[2, 2], dilations=[2, 2], p=2), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_UPPER", p=2), REF),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_LOWER", p=2), REF),
    ((1, 1, 7), dict(kernel_shape=[3], strides=[3], ceil_mode=1, p=2), ORT),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,attrs,oracle", LPPOOL_CASES)
def test_lp_pool(xs, attrs, oracle, dtype):
    rng = np.random.default_rng(5)
    check("LpPool", [_rand(rng, xs, dtype)], oracle=oracle, **attrs)


# ------------------------------------------------------------------ global pools, norms


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("xs", [(2, 3, 7), (2, 3, 4, 5), (1, 2, 3, 4, 5)])
def test_global_pool(xs, op, dtype):
    rng = np.random.default_rng(6)
    oracle = REF
    if op == "GlobalMaxPool" and len(xs) != 4:
        oracle = _global_max_numpy  # onnx.reference reduces the wrong axes unless the input is 4-D
    check(op, [_rand(rng, xs, dtype)], oracle=oracle)


def _global_max_numpy(model, inputs):
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


def test_global_max_pool_nan_propagates():
    x = np.ones((1, 2, 4, 4), np.float32)
    x[0, 1, 2, 1] = np.nan
    check("GlobalMaxPool", [x])


def _lrn_numpy(x, size, alpha, beta, bias):
    """LRN per the ONNX spec (onnx.reference's loop runs over N instead of C, so only N == C works)."""
    c = x.shape[1]
    sq = np.zeros_like(x, dtype=np.float64)
    for i in range(c):
        lo, hi = max(0, i - (size - 1) // 2), min(c - 1, i + (size - 1) - (size - 1) // 2)
        sq[:, i] = (x[:, lo:hi + 1].astype(np.float64) ** 2).sum(axis=1)
    return [(x / (bias + alpha / size * sq) ** beta).astype(x.dtype)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,attrs,oracle", [
    ((4, 4, 3, 5), dict(size=3, alpha=0.02, beta=0.75, bias=1.5), REF),
    ((5, 5, 2, 3), dict(size=4), REF),
    ((2, 7, 6), dict(size=5, alpha=0.1, beta=0.5, bias=2.0), "numpy"),
    ((2, 6, 2, 3, 2), dict(size=2, alpha=0.3, beta=1.0, bias=1.0), "numpy"),
])
def test_lrn(xs, attrs, oracle, dtype):
    rng = np.random.default_rng(7)
    x = _rand(rng, xs, dtype)
    if oracle == "numpy":
        a = dict(alpha=1e-4, beta=0.75, bias=1.0) | attrs
        expected = _lrn_numpy(x, a["size"], a["alpha"], a["beta"], a["bias"])[0]
        got = run_kernel("LRN", [x], attrs)[0]
        np.testing.assert_allclose(got, expected, **_tol(dtype))
    else:
        check("LRN", [x], **attrs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,eps", [((2, 3, 7), 1e-5), ((2, 3, 4, 5), 1e-2), ((1, 2, 3, 4, 5), 1e-5)])
def test_instance_norm(xs, eps, dtype):
    rng = np.random.default_rng(8)
    inputs = [_rand(rng, xs, dtype) * 3 + 1, _rand(rng, (xs[1],), dtype), _rand(rng, (xs[1],), dtype)]
    check("InstanceNormalization", inputs, epsilon=eps)


# ---------------------------------------------------------------------- geometry


def test_pool_geometry_ceil_last_window_must_start_inside():
    # ceil would give 3 windows, but the third would start at 4 - 1 = 3 >= L: dropped
    assert pool_geometry([3], [2], [2], None, [1, 1], "NOTSET", 1) == ((1,), (1,), (2,))
    assert pool_geometry([2], [3], [2], None, [1, 1], "NOTSET", 1) == ((1,), (1,), (2,))
    assert pool_geometry([4], [3], [2], None, None, "NOTSET", 1) == ((0,), (0,), (2,))
    assert pool_geometry([7], [3], [3], None, [1, 1], "NOTSET", 1) == ((1,), (1,), (3,))
    assert pool_geometry([7], [3], [3], None, None, "NOTSET", 0) == ((0,), (0,), (2,))


def test_same_pads_and_transpose_geometry():
    assert conv_geometry([5, 5], [3, 3], [2, 2], None, None, "SAME_UPPER") == ((1, 1), (1, 1), (3, 3))
    assert conv_geometry([7], [4], [2], None, None, "SAME_UPPER") == ((1,), (2,), (4,))
    assert conv_geometry([7], [4], [2], None, None, "SAME_LOWER") == ((2,), (1,), (4,))
    assert conv_geometry([8], [1], [5], None, None, "SAME_UPPER") == ((0,), (0,), (2,))
    assert conv_geometry([6], [3], [1], [2], None, b"SAME_UPPER") == ((2,), (2,), (6,))
    assert conv_transpose_geometry([3, 3], [3, 3], [3, 2], None, None, "NOTSET", [1, 1], None)[2] == (10, 8)
    assert conv_transpose_geometry([3], [3], [2], None, None, "NOTSET", None, [8]) == ((0,), (-1,), (8,))
    assert conv_transpose_geometry([3], [3], [2], None, None, "NOTSET", None, [5]) == ((1,), (1,), (5,))
    assert conv_transpose_geometry([3], [4], [2], None, None, "SAME_UPPER", None, None) == ((1,), (1,), (6,))
    with pytest.raises(ValueError):
        conv_geometry([2], [5], None, None, None, "NOTSET")


# ------------------------------------------------------- ONNX conformance node cases

CONFORMANCE_OPS = {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool",
    "GlobalAveragePool", "GlobalMaxPool", "LRN", "InstanceNormalization",
}
# Official cases whose expected output we deliberately do not reproduce (name -> reason).
CONFORMANCE_XFAIL: dict[str, str] = {}


# The case modules for these ops; importing one runs its exporters and registers its cases,
# which is much cheaper than collect_testcases() importing every op's module (~10 s).
_CONFORMANCE_MODULES = (
    "averagepool", "conv", "convtranspose", "globalaveragepool", "globalmaxpool",
    "instance_normalization", "lppool", "lrn", "maxpool",
)


def _conformance_cases():
    import importlib
    import warnings

    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for mod in _CONFORMANCE_MODULES:
                importlib.import_module(f"{node_cases.__name__}.{mod}")
            cases = list(node_cases._NodeTestCases)
        except (ImportError, AttributeError):  # layout changed: fall back to the public API
            cases = node_cases.collect_testcases()
    return [c for c in cases
            if len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in CONFORMANCE_OPS]


_CASES = _conformance_cases()


@pytest.mark.parametrize("case", _CASES, ids=[c.name for c in _CASES])
def test_onnx_conformance(case):
    if case.name in CONFORMANCE_XFAIL:
        pytest.xfail(CONFORMANCE_XFAIL[case.name])
    node = case.model.graph.node[0]
    attrs = _attrs(node)
    for inputs, outputs in case.data_sets:
        inputs = list(inputs) + [None] * (len(node.input) - len(inputs))
        inputs = [a if name else None for a, name in zip(inputs, node.input)]
        got = run_kernel(node.op_type, inputs, attrs, len(outputs))
        for e, g in zip(outputs, got):
            assert g.shape == e.shape, (g.shape, e.shape)
            if e.dtype.kind in "iu":
                np.testing.assert_array_equal(g, e)
            else:
                np.testing.assert_allclose(g, e, **_tol(e.dtype))


# The separable 2-D fast path of max_pool (no Indices, dilation 1): odd sizes, ceil_mode,
# pads on one side, windows cut by the border, 1-D; NaN cases against the general path.
MAXPOOL_FAST_CASES = [
    ((1, 3, 112, 112), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ((2, 3, 9, 11), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ((2, 3, 9, 11), dict(kernel_shape=[2, 2], strides=[2, 2])),
    ((2, 3, 9, 11), dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ((1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ((1, 2, 7, 10), dict(kernel_shape=[3, 2], strides=[1, 3], pads=[0, 1, 2, 0])),
    ((1, 2, 6, 13), dict(kernel_shape=[4, 5], strides=[3, 1], pads=[2, 2, 1, 1])),
    ((2, 3, 12), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,attrs", MAXPOOL_FAST_CASES)
def test_max_pool_fast_path(xs, attrs, dtype):
    check("MaxPool", [_rand(np.random.default_rng(5), xs, dtype)], n_outputs=1, **attrs)


@pytest.mark.parametrize("xs,attrs", MAXPOOL_FAST_CASES[1:6])
def test_max_pool_fast_path_nan_matches_general(xs, attrs):
    """NaN wherever it lands: the fast path equals the general one (which also gives Indices)."""
    rng = np.random.default_rng(6)
    x = _rand(rng, xs, np.float32)
    x.reshape(-1)[rng.choice(x.size, x.size // 5, replace=False)] = np.nan
    model = make_model("MaxPool", [x], 2, **attrs)
    fast = run_kernel("MaxPool", [x], _attrs(model.graph.node[0]), 1)[0]
    general = run_kernel("MaxPool", [x], _attrs(model.graph.node[0]), 2)[0]
    np.testing.assert_array_equal(fast, general)
