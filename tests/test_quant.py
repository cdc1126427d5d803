"""Quantized ops on the CPU target.

Whole models are quantized with onnxruntime.quantization (dynamic and static,
QOperator and QDQ formats, per tensor and per channel) and compared with
onnxruntime running them unoptimised (its fused x64 u8s8 kernels saturate
int16 pair sums, so with int8 weights the oracle is onnx.reference, which
follows the spec). Single ops are compared with onnx.reference, or with
onnxruntime for the opsets the reference does not implement.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper

from compiler import compile

from .helpers import model, reference

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

RNG = np.random.default_rng(0)


def run_ort(m, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def run_ours(m, feeds):
    out = compile(m, target="cpu").run(feeds)
    return [out[o.name] for o in m.graph.output]


def assert_same(got, want, atol=1e-3):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=0, atol=atol)
        else:
            np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------- whole models


def _matmul_add():
    w = RNG.standard_normal((8, 16)).astype(np.float32)
    b = RNG.standard_normal(16).astype(np.float32)
    return model([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
                 [("x", T.FLOAT, [4, 8])], [("y", T.FLOAT, [4, 16])], {"W": w, "b": b}), (4, 8)


def _conv():
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    return model([helper.make_node("Conv", ["x", "W", "b"], ["h"], pads=[1, 1, 1, 1], strides=[2, 1]),
                  helper.make_node("Relu", ["h"], ["y"])],
                 [("x", T.FLOAT, [2, 3, 9, 8])], [("y", T.FLOAT, [2, 4, 5, 8])], {"W": w, "b": b}), (2, 3, 9, 8)


MODELS = {"matmul_add": _matmul_add, "conv": _conv}


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, shape):
        self.data = iter([{"x": RNG.standard_normal(shape).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.data, None)


def _quantized(tmp_path, name, quantize):
    float_model, shape = MODELS[name]()
    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    onnx.save(float_model, src)
    quantize(str(src), str(dst), shape)
    return onnx.load(dst), {"x": RNG.standard_normal(shape).astype(np.float32)}


@pytest.mark.parametrize("name", MODELS)
def test_dynamic_uint8_weights_vs_onnxruntime(tmp_path, name):
    m, feeds = _quantized(tmp_path, name, lambda s, d, shape: quantization.quantize_dynamic(
        s, d, weight_type=quantization.QuantType.QUInt8))
    assert {"DynamicQuantizeLinear"} <= {n.op_type for n in m.graph.node}
    assert_same(run_ours(m, feeds), run_ort(m, feeds))


@pytest.mark.parametrize("name", MODELS)
def test_dynamic_int8_weights_vs_reference(tmp_path, name):
    m, feeds = _quantized(tmp_path, name, lambda s, d, shape: quantization.quantize_dynamic(s, d))
    assert_same(run_ours(m, feeds), reference(m, feeds))


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
@pytest.mark.parametrize("name", MODELS)
def test_static_vs_onnxruntime(tmp_path, name, fmt, per_channel):
    m, feeds = _quantized(tmp_path, name, lambda s, d, shape: quantization.quantize_static(
        s, d, _Reader(shape), quant_format=getattr(quantization.QuantFormat, fmt), per_channel=per_channel,
        op_types_to_quantize=["MatMul", "Conv"]))   # QLinearAdd is a com.microsoft op
    ops = {n.op_type for n in m.graph.node}
    assert ({"QLinearMatMul", "QLinearConv"} & ops) if fmt == "QOperator" else "DequantizeLinear" in ops
    assert_same(run_ours(m, feeds), run_ort(m, feeds))


# --------------------------------------------------------------------------- single ops


def _ints(dtype, shape):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)


QDTYPES = {np.uint8: T.UINT8, np.int8: T.INT8, np.uint16: T.UINT16, np.int16: T.INT16}


@pytest.mark.parametrize("const_params", [False, True])     # True: fused elementwise; False: the kernel
@pytest.mark.parametrize("qdtype,axis", [(np.uint8, None), (np.int8, 1), (np.uint16, -1), (np.int16, 1), (np.int8, -1)])
def test_quantize_dequantize(qdtype, axis, const_params):
    x = (RNG.standard_normal((2, 3, 4)) * 300).astype(np.float32)
    x.flat[:4] = [0.5, 1.5, -2.5, 2.5]      # ties round to even
    c = 1 if axis is None else x.shape[axis]
    scale = RNG.uniform(0.5, 2.0, c).astype(np.float32)
    zero = _ints(qdtype, c) // 4
    if axis is None:
        scale, zero = scale.reshape(()), zero.reshape(())
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)]
    params = {"s": scale, "z": zero}
    ins = [("x", T.FLOAT, x.shape)]
    if not const_params:
        ins += [("s", T.FLOAT, scale.shape), ("z", QDTYPES[qdtype], zero.shape)]
    m = model(nodes, ins, [("q", QDTYPES[qdtype], x.shape), ("y", T.FLOAT, x.shape)],
              params if const_params else {}, opset=21)
    feeds = {"x": x} if const_params else {"x": x, **params}
    assert_same(run_ours(m, feeds), reference(m, feeds))


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
def test_quantize_opsets(opset):
    x = (RNG.standard_normal((3, 5)) * 100).astype(np.float32)
    per_axis = opset >= 13
    scale = RNG.uniform(0.5, 2.0, 5 if per_axis else ()).astype(np.float32)
    zero = _ints(np.int8, 5 if per_axis else ())
    attrs = {"axis": 1} if per_axis else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"], **attrs)]
    m = model(nodes, [("x", T.FLOAT, x.shape)], [("q", T.INT8, x.shape), ("y", T.FLOAT, x.shape)],
              {"s": scale, "z": zero}, opset=opset)
    feeds = {"x": x}
    assert_same(run_ours(m, feeds), run_ort(m, feeds))


def test_blocked_and_output_dtype():
    x = (RNG.standard_normal((4, 6)) * 50).astype(np.float32)
    scale = RNG.uniform(0.5, 2.0, (4, 2)).astype(np.float32)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], axis=1, block_size=3, output_dtype=T.INT16),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"], axis=1, block_size=3)]
    m = model(nodes, [("x", T.FLOAT, x.shape), ("s", T.FLOAT, scale.shape)],
              [("q", T.INT16, x.shape), ("y", T.FLOAT, x.shape)], opset=21)
    feeds = {"x": x, "s": scale}
    assert_same(run_ours(m, feeds), reference(m, feeds))


def test_dynamic_quantize_linear():
    x = RNG.uniform(0.5, 3.0, (3, 7)).astype(np.float32)     # all positive: the range widens to 0
    m = model([helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], [("x", T.FLOAT, x.shape)],
              [("y", T.UINT8, x.shape), ("s", T.FLOAT, []), ("z", T.UINT8, [])], opset=11)
    assert_same(run_ours(m, {"x": x}), reference(m, {"x": x}))


@pytest.mark.parametrize("a_dtype,b_dtype", [(np.uint8, np.int8), (np.int8, np.uint8)])
def test_matmul_integer_batched_per_row_zero_points(a_dtype, b_dtype):
    a, b = _ints(a_dtype, (2, 1, 5, 7)), _ints(b_dtype, (3, 7, 4))
    az, bz = _ints(a_dtype, 5), _ints(b_dtype, 4)
    m = model([helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])],
              [("a", QDTYPES[a_dtype], a.shape), ("b", QDTYPES[b_dtype], b.shape),
               ("az", QDTYPES[a_dtype], az.shape), ("bz", QDTYPES[b_dtype], bz.shape)],
              [("y", T.INT32, (2, 3, 5, 4))], opset=10)
    feeds = {"a": a, "b": b, "az": az, "bz": bz}
    # numpy oracle: onnx.reference subtracts a per-row a_zero_point along the wrong axis
    want = np.matmul(a.astype(np.int64) - az.astype(np.int64)[:, None], b.astype(np.int64) - bz.astype(np.int64))
    assert_same(run_ours(m, feeds), [want.astype(np.int32)])


def test_conv_integer_groups_strides_dilations():
    x, w = _ints(np.uint8, (2, 4, 9, 10)), _ints(np.int8, (6, 2, 3, 2))
    xz, wz = np.array(7, np.uint8), _ints(np.int8, 6)
    m = model([helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], group=2, strides=[2, 1],
                                dilations=[1, 2], pads=[1, 0, 2, 1])],
              [("x", T.UINT8, x.shape), ("w", T.INT8, w.shape)], [("y", T.INT32, (2, 6, 5, 9))],
              {"xz": xz, "wz": wz}, opset=10)
    feeds = {"x": x, "w": w}
    assert_same(run_ours(m, feeds), reference(m, feeds))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_conv_per_channel_bias(dtype):
    x, w = _ints(dtype, (1, 3, 6, 6)), _ints(np.int8, (4, 3, 3, 3))
    inits = {"xs": np.float32(0.02), "xz": np.array(3, dtype), "ws": RNG.uniform(0.01, 0.03, 4).astype(np.float32),
             "wz": np.zeros(4, np.int8), "ys": np.float32(0.5), "yz": np.array(5, dtype),
             "B": RNG.integers(-500, 500, 4).astype(np.int32)}
    m = model([helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "B"], ["y"],
                                pads=[1, 1, 1, 1])],
              [("x", QDTYPES[dtype], x.shape), ("w", T.INT8, w.shape)], [("y", QDTYPES[dtype], (1, 4, 6, 6))], inits, opset=10)
    feeds = {"x": x, "w": w}
    assert_same(run_ours(m, feeds), reference(m, feeds))


def test_qlinear_matmul_broadcast_batch():
    a, b = _ints(np.uint8, (2, 3, 6)), _ints(np.uint8, (6, 5))
    inits = {"as": np.float32(0.05), "az": np.array(100, np.uint8), "bs": np.float32(0.03),
             "bz": np.array(120, np.uint8), "ys": np.float32(0.7), "yz": np.array(128, np.uint8)}
    m = model([helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])],
              [("a", T.UINT8, a.shape), ("b", T.UINT8, b.shape)], [("y", T.UINT8, (2, 3, 5))], inits, opset=21)
    feeds = {"a": a, "b": b}
    assert_same(run_ours(m, feeds), reference(m, feeds))
