"""Vision ops (and the small ops that came with them) on random data against
onnx.reference, where the conformance cases leave gaps: every GridSample
mode x padding x align_corners in 2-D and 3-D with grids reaching outside
[-1, 1], adaptive RoiAlign sampling, grouped DeformConv, batched Det..."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from compiler import compile

from .helpers import reference


def grid(*axes) -> list:
    """Every combination of the parameter axes, as a list (pytest wants a collection)."""
    return list(itertools.product(*axes))

RNG = np.random.default_rng(0)
OPSET = 22


def run_ours(m, feeds):
    out = compile(m, target="cpu").run(feeds)
    return [out[o.name] for o in m.graph.output]


def with_output_shapes(m, feeds):
    """The model with its outputs' shapes (as onnx.reference computes them) declared."""
    for o, v in zip(m.graph.output, reference(m, feeds)):
        o.CopyFrom(helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type, v.shape))
    return m


def check(m, feeds, rtol=1e-4, atol=1e-5):
    m = with_output_shapes(m, feeds)
    for got, want in zip(run_ours(m, feeds), reference(m, feeds)):
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(got, want)


def one_node(op, ins, outs, opset=OPSET, **attrs):
    """A one-node model (unchecked: `check` declares the output shapes); ins/outs: [(name, elem_type, shape)]."""
    return unchecked([helper.make_node(op, [n for n, _, _ in ins], [n for n, _, _ in outs], **attrs)], ins, outs, opset)


def unchecked(nodes, ins, outs, opset, inits=()):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, t, s) for n, t, s in ins],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outs],
                          [numpy_helper.from_array(v, k) for k, v in dict(inits).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("mode,padding,align", grid(
    ("nearest", "linear", "cubic"), ("zeros", "border", "reflection"), (0, 1)))
def test_grid_sample_2d(mode, padding, align):
    x = RNG.standard_normal((2, 3, 5, 4)).astype(np.float32)
    grid = RNG.uniform(-1.7, 1.7, (2, 6, 7, 2)).astype(np.float32)
    m = one_node("GridSample", [("x", T.FLOAT, x.shape), ("g", T.FLOAT, grid.shape)], [("y", T.FLOAT, None)],
                 mode=mode, padding_mode=padding, align_corners=align)
    check(m, {"x": x, "g": grid})


@pytest.mark.parametrize("mode,padding,align", grid(
    ("nearest", "linear"), ("zeros", "border", "reflection"), (0, 1)))
def test_grid_sample_3d(mode, padding, align):
    x = RNG.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    grid = RNG.uniform(-1.5, 1.5, (1, 2, 3, 4, 3)).astype(np.float32)
    m = one_node("GridSample", [("x", T.FLOAT, x.shape), ("g", T.FLOAT, grid.shape)], [("y", T.FLOAT, None)],
                 mode=mode, padding_mode=padding, align_corners=align)
    check(m, {"x": x, "g": grid})


def test_grid_sample_opset16_names():
    """GridSample-16 spells the modes bilinear / bicubic."""
    x = RNG.standard_normal((1, 1, 4, 4)).astype(np.float32)
    grid = RNG.uniform(-1, 1, (1, 3, 3, 2)).astype(np.float32)
    ins, outs = [("x", T.FLOAT, x.shape), ("g", T.FLOAT, grid.shape)], [("y", T.FLOAT, (1, 1, 3, 3))]
    feeds = {"x": x, "g": grid}
    got = run_ours(one_node("GridSample", ins, outs, opset=16, mode="bicubic"), feeds)[0]
    want = reference(one_node("GridSample", ins, outs, mode="cubic"), feeds)[0]   # the reference knows only the new names
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,align", grid(((2, 3, 4, 5), (1, 2, 3, 4, 2)), (0, 1)))
def test_affine_grid(size, align):
    r = len(size) - 2
    theta = RNG.standard_normal((size[0], r, r + 1)).astype(np.float32)
    m = one_node("AffineGrid", [("t", T.FLOAT, theta.shape)], [("y", T.FLOAT, None)], opset=20,
                 align_corners=align)
    m.graph.node.insert(0, helper.make_node("Constant", [], ["s"], value=helper.make_tensor("v", T.INT64, (len(size),), size)))
    m.graph.node[1].input.append("s")
    check(m, {"t": theta})


def test_col2im_strided_dilated_padded():
    image, block, strides, dil, pads = (7, 6), (2, 3), (2, 1), (1, 2), (1, 0, 2, 1)
    ncol = [(image[d] + pads[d] + pads[2 + d] - dil[d] * (block[d] - 1) - 1) // strides[d] + 1 for d in range(2)]
    x = RNG.standard_normal((2, 3 * 6, ncol[0] * ncol[1])).astype(np.float32)
    m = unchecked([helper.make_node("Col2Im", ["x", "i", "b"], ["y"], strides=strides, dilations=dil, pads=pads)],
                  [("x", T.FLOAT, x.shape)], [("y", T.FLOAT, None)], 18,
                  inits={"i": np.array(image, np.int64), "b": np.array(block, np.int64)})
    check(m, {"x": x})


@pytest.mark.parametrize("with_mask", (False, True))
def test_deform_conv_grouped(with_mask):
    x = RNG.standard_normal((2, 4, 6, 5)).astype(np.float32)
    w = RNG.standard_normal((6, 2, 3, 2)).astype(np.float32)
    b = RNG.standard_normal(6).astype(np.float32)
    oh, ow = (6 + 1 + 1 - 2 * 2 - 1) // 2 + 1, (5 + 1 + 0 - 1 - 1) + 1
    off = RNG.uniform(-2, 2, (2, 2 * 3 * 2 * 2, oh, ow)).astype(np.float32)
    ins = [("x", T.FLOAT, x.shape), ("w", T.FLOAT, w.shape), ("o", T.FLOAT, off.shape), ("b", T.FLOAT, b.shape)]
    feeds = {"x": x, "w": w, "o": off, "b": b}
    if with_mask:
        feeds["m"] = RNG.uniform(0, 1, (2, 2 * 3 * 2, oh, ow)).astype(np.float32)
        ins.append(("m", T.FLOAT, feeds["m"].shape))
    m = one_node("DeformConv", ins, [("y", T.FLOAT, None)], group=2, offset_group=2, strides=[2, 1],
                 dilations=[2, 1], pads=[1, 1, 1, 0])
    check(m, feeds, atol=1e-4)


@pytest.mark.parametrize("mode,ctm,ratio", grid(("avg", "max"), ("half_pixel", "output_half_pixel"), (0, 2)))
def test_roi_align(mode, ctm, ratio):
    x = RNG.standard_normal((2, 3, 12, 10)).astype(np.float32)
    lo = RNG.uniform(-2, 8, (5, 2))
    rois = np.concatenate([lo, lo + RNG.uniform(0.5, 9, (5, 2))], axis=1).astype(np.float32)
    batch = np.array([0, 1, 1, 0, 1], np.int64)
    m = one_node("RoiAlign", [("x", T.FLOAT, x.shape), ("r", T.FLOAT, rois.shape), ("i", T.INT64, batch.shape)],
                 [("y", T.FLOAT, None)], mode=mode, coordinate_transformation_mode=ctm, sampling_ratio=ratio,
                 output_height=3, output_width=4, spatial_scale=0.8)
    check(m, {"x": x, "r": rois, "i": batch})


def test_max_unpool_of_max_pool_3d():
    """MaxPool's indices fed back: the values return to where the maxima were."""
    x = RNG.standard_normal((2, 2, 4, 6, 4)).astype(np.float32)
    pool = helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    unpool = helper.make_node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    m = unchecked([pool, unpool], [("x", T.FLOAT, x.shape)], [("y", T.FLOAT, None)], OPSET)
    check(m, {"x": x})


def test_max_pool_int8_with_indices():
    x = RNG.integers(-128, 128, (1, 2, 6, 7)).astype(np.int8)
    m = one_node("MaxPool", [("x", T.INT8, x.shape)], [("y", T.INT8, None), ("i", T.INT64, None)],
                 kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1])
    check(m, {"x": x})


@pytest.mark.parametrize("axis,p", ((0, 2), (1, 2), (-1, 1)))
def test_lp_normalization(axis, p):
    """Against numpy with |x| (onnx.reference forgets the abs when p = 1)."""
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    x[1, :, 2] = 0
    m = one_node("LpNormalization", [("x", T.FLOAT, x.shape)], [("y", T.FLOAT, x.shape)], axis=axis, p=p)
    norm = np.sum(np.abs(x.astype(np.float64)) ** p, axis=axis, keepdims=True) ** (1 / p)
    want = np.where(norm == 0, 0, x / np.where(norm == 0, 1, norm))
    np.testing.assert_allclose(run_ours(m, {"x": x})[0], want, rtol=1e-5, atol=1e-6)


def test_det_batched():
    x = RNG.standard_normal((2, 3, 5, 5))
    x[0, 1] = 0           # singular
    x[1, 2, 3] = x[1, 2, 0]
    m = one_node("Det", [("x", T.DOUBLE, x.shape)], [("y", T.DOUBLE, (2, 3))])
    np.testing.assert_allclose(run_ours(m, {"x": x})[0], np.linalg.det(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ("linear", "circular"))
def test_tensor_scatter_axis_1(mode):
    cache = RNG.standard_normal((2, 6, 3, 2)).astype(np.float32)
    upd = RNG.standard_normal((2, 4, 3, 2)).astype(np.float32)
    idx = np.array([2, 0] if mode == "linear" else [5, 3], np.int64)
    m = one_node("TensorScatter", [("c", T.FLOAT, cache.shape), ("u", T.FLOAT, upd.shape), ("i", T.INT64, idx.shape)],
                 [("y", T.FLOAT, None)], opset=24, axis=1, mode=mode)
    check(m, {"c": cache, "u": upd, "i": idx})


@pytest.mark.parametrize("direction", ("LEFT", "RIGHT"))
def test_bitshift_out_of_range(direction):
    x = np.array([-8, 4, -1, 7, -5, 1 << 30], np.int32)
    s = np.array([-1, 32, 40, 3, 1, 31], np.int32)
    m = one_node("BitShift", [("x", T.INT32, x.shape), ("s", T.INT32, s.shape)], [("y", T.INT32, None)],
                 direction=direction)
    check(m, {"x": x, "s": s})


@pytest.mark.parametrize("op,dtype", grid(("ReduceMax", "ReduceMin"), (T.INT32, T.UINT8, T.BOOL)))
def test_reduce_extreme_of_empty_set(op, dtype):
    """An empty reduction gives the dtype's lowest (Max) or highest (Min) value."""
    from compiler.dtypes import to_numpy
    x = np.zeros((2, 0, 3), to_numpy(dtype))
    m = unchecked([helper.make_node(op, ["x", "a"], ["y"], keepdims=0)], [("x", dtype, x.shape)], [("y", dtype, None)],
                  20, inits={"a": np.array([1], np.int64)})
    check(m, {"x": x})
