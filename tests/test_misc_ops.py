"""Einsum, DFT, data-dependent shapes (NonZero, Unique, Compress) and host
float folding into Range, against numpy and onnx.reference."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile
from compiler import frontend
from compiler.frontend import CompileError
from compiler.passes.dynamic import check_data_dependent
from tests.helpers import F, model, reference

I64 = TensorProto.INT64


@pytest.mark.parametrize("eq, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bki", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ii->i", [(4, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("i,i", [(6,), (6,)]),
    ("bii->b", [(3, 4, 4)]),
])
def test_einsum_matches_numpy(eq, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(xs))]
    want = np.einsum(eq, *xs)
    m = model([helper.make_node("Einsum", names, ["y"], equation=eq)],
              [(n, F, x.shape) for n, x in zip(names, xs)], [("y", F, want.shape)], opset=12)
    got = compile(m)(*xs)
    got = got[0] if isinstance(got, (list, tuple)) else got
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_einsum_source_has_no_equation_text():
    from compiler.driver import lower_to_ir
    from targets import cpu
    m = model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="xyz,xzw->xwy")],
              [("a", F, (2, 3, 4)), ("b", F, (2, 4, 5))], [("y", F, (2, 5, 3))], opset=12)
    g = lower_to_ir(m, {"a": (np.float32, (2, 3, 4), None), "b": (np.float32, (2, 4, 5), None)})
    assert "xzw" not in cpu.build(g, {"fusion": True})["source"]


@pytest.mark.parametrize("n, inverse, onesided", [(8, 0, 0), (12, 1, 0), (16, 0, 1), (7, 1, 1)])
def test_dft_matches_reference(n, inverse, onesided):
    rng = np.random.default_rng(1)
    c = 2 if inverse else 1
    length = n // 2 + 1 if inverse and onesided else n
    x = rng.standard_normal((3, length, c)).astype(np.float32)
    ins, inits = ["x"], {}
    if inverse and onesided:   # an odd irfft length needs dft_length
        ins, inits = ["x", "len"], {"len": np.asarray(n, np.int64)}
    m = model([helper.make_node("DFT", ins, ["y"], axis=1, inverse=inverse, onesided=onesided)],
              [("x", F, x.shape)], [("y", F, [None] * 3)], inits=inits, opset=17)
    want, = reference(m, {"x": x})
    np.testing.assert_allclose(_run(m, x)[0], want, rtol=1e-4, atol=1e-4)


def _run(m, *xs):
    out = compile(m)(*xs)
    return out if isinstance(out, (list, tuple)) else [out]


def test_nonzero_and_unique_vary_with_data():
    m = model([helper.make_node("NonZero", ["x"], ["y"])], [("x", F, (3, 4))], [("y", I64, [2, None])])
    fn = compile(m)
    for x in (np.eye(3, 4, dtype=np.float32), np.zeros((3, 4), np.float32), np.ones((3, 4), np.float32)):
        np.testing.assert_array_equal(fn(x), np.stack(np.nonzero(x)))
    m = model([helper.make_node("Unique", ["x"], ["y", "i", "inv", "c"], sorted=1)], [("x", F, (7,))],
              [("y", F, [None]), ("i", I64, [None]), ("inv", I64, [7]), ("c", I64, [None])], opset=11)
    x = np.asarray([2, 1, 1, 3, 4, 3, 2], np.float32)
    for got, want in zip(_run(m, x), np.unique(x, True, True, True)):
        np.testing.assert_array_equal(got, want)


def test_data_dependent_output_feeding_a_node():
    """The plan ends a segment after NonZero; inside one graph, the pass refuses it clearly."""
    m = model([helper.make_node("NonZero", ["x"], ["n"]), helper.make_node("Cast", ["n"], ["y"], to=F)],
              [("x", F, (3, 4))], [("y", F, [2, None])])
    for x in (np.eye(3, 4, dtype=np.float32), np.ones((3, 4), np.float32)):
        np.testing.assert_array_equal(compile(m)(x), np.stack(np.nonzero(x)).astype(np.float32))
    graph = frontend.to_ir(frontend.prepare(m), {"x": (np.dtype(np.float32), (3, 4), None)})
    with pytest.raises(CompileError, match="data-dependent shape"):
        check_data_dependent(graph)


def test_compress_with_runtime_condition():
    m = model([helper.make_node("Compress", ["x", "c"], ["y"], axis=1)],
              [("x", F, (2, 5)), ("c", TensorProto.BOOL, (5,))], [("y", F, [2, None])])
    fn = compile(m)
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    for c in ([1, 0, 1, 1, 0], [0, 0, 0, 0, 0]):
        c = np.asarray(c, bool)
        np.testing.assert_array_equal(fn(x, c), np.compress(c, x, axis=1))


def test_float_math_into_range_folds_on_the_host():
    """A size through float Cast/Div/Ceil into Range is shape arithmetic: it must fold."""
    nodes = [helper.make_node("Cast", ["n"], ["nf"], to=F),
             helper.make_node("Div", ["nf", "two"], ["h"]),
             helper.make_node("Ceil", ["h"], ["hc"]),
             helper.make_node("Range", ["zero", "hc", "one"], ["r"]),
             helper.make_node("Cos", ["r"], ["y"])]
    m = model(nodes, [("n", I64, ())], [("y", F, [None])],
              inits={"two": np.float32(2), "zero": np.float32(0), "one": np.float32(1)})
    for n in (5, 8):
        want, = reference(m, {"n": np.asarray(n, np.int64)})
        np.testing.assert_allclose(_run(m, np.asarray(n, np.int64))[0], want, rtol=1e-6)


def test_softmax_float32_rows_with_nan_inf_and_masks():
    """float32 Softmax takes a vectorised exp (kernels/fastmath.exp32_shifted) on finite rows;
    rows with NaN or inf fall back to the exact path: both against onnx.reference."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 16, 40)) * 20).astype(np.float32)
    x[0, 1, 3] = np.nan
    x[0, 2, :] = -np.inf
    x[0, 3, 5] = np.inf
    x[0, 4, 7:] = -np.inf                        # a causal mask
    x[0, 5, 7:] = np.finfo(np.float32).min       # torch's finite mask
    x[0, 6, :] = 0
    x[1, 0, :] = np.float32(-1e30)
    m = model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [("x", F, x.shape)], [("y", F, x.shape)])
    want = reference(m, {"x": x})[0]
    got = compile(m)(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape, attrs", [
    ((2, 8, 7, 7), dict(kernel_shape=[7, 7])),                          # ResNet's closing pool
    ((1, 3, 7, 7), dict(kernel_shape=[7, 7], strides=[2, 2], ceil_mode=1)),
    ((1, 4, 5), dict(kernel_shape=[5], count_include_pad=1)),
    ((1, 2, 2, 3, 2), dict(kernel_shape=[2, 3, 2])),
    ((1, 2, 3, 3), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)),   # padded: not global
])
def test_average_pool_over_the_whole_image(shape, attrs):
    """One unpadded window over the whole image runs as the global pool (a far cheaper kernel
    to compile); padded windows keep the general one. Both against onnx.reference."""
    from compiler.driver import lower_to_ir
    from targets import cpu
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    m = model([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], [("x", F, shape)],
              [("y", F, [None] * len(shape))], opset=19)
    np.testing.assert_allclose(compile(m)(x), reference(m, {"x": x})[0], rtol=1e-5, atol=1e-6)
    source = cpu.build(lower_to_ir(m, {"x": (np.float32, shape, None)}), {"fusion": True})["source"]
    assert ("global_pool" in source) == ("pads" not in attrs)
