"""The IR and each pass on its own, then fused vs unfused results."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile, frontend
from compiler.driver import lower_to_ir
from compiler.ir import Graph, Node, Value
from compiler.passes.decompose import decompose
from compiler.passes.fold import fold_constants
from compiler.passes.fuse import fuse_elementwise
from compiler.passes.simplify import eliminate_dead_code, eliminate_identities
from tests.helpers import F, model, reference

I64 = TensorProto.INT64


def _feeds(m, arrays):
    return {i.name: (a.dtype, a.shape, None) for i, a in zip(m.graph.input, arrays)}


def chain_model():
    return model([helper.make_node("Add", ["x", "y"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
                  helper.make_node("Identity", ["r"], ["i"]), helper.make_node("Mul", ["i", "y"], ["out"]),
                  helper.make_node("Neg", ["x"], ["unused"])],
                 [("x", F, [2, 3]), ("y", F, [3])], [("out", F, [2, 3])])


def test_ir_printer_and_order():
    m = chain_model()
    g = frontend.to_ir(m, _feeds(m, [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]))
    text = str(g)
    assert "Add(" in text and "Relu(" in text and "float32[2,3]" in text
    shuffled = Graph(g.inputs, g.outputs, g.nodes[::-1]).toposort()
    assert [n.op for n in shuffled.nodes][:2] in (["Add", "Relu"], ["Add", "Neg"], ["Neg", "Add"])
    assert shuffled.to_networkx().number_of_edges() == 3


def test_shape_chain_folds_to_a_constant():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters emit: all host-folded."""
    m = model([helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
               helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
               helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
               helper.make_node("Reshape", ["x", "shape"], ["out"])],
              [("x", F, ["b", 3, 4])], [("out", F, ["b", 12])],
              {"zero": np.array(0, np.int64), "zero1": np.array([0], np.int64), "minus1": np.array([-1], np.int64)})
    g = lower_to_ir(m, _feeds(m, [np.zeros((5, 3, 4), np.float32)]))
    assert [n.op for n in g.nodes] == ["Reshape"]
    assert g.nodes[0].inputs[1].const.tolist() == [5, -1]   # the folded shape tensor, as written
    assert g.outputs[0].shape == (5, 12)


def test_fold_pass_alone():
    c = Value("c", np.dtype(np.int64), (2,), np.array([2, 3]))
    out = Value("o", np.dtype(np.float32), (2, 3))
    n = Node("ConstantOfShape", [c], [out], {"value": np.array([1.5], np.float32)})
    g = fold_constants(Graph([], [out], [n]))
    assert g.nodes == [] and out.const.shape == (2, 3) and out.const[0, 0] == 1.5


def test_float_math_on_constants_is_not_folded():
    """Tensor math stays in compiled kernels even when its inputs are constants."""
    m = model([helper.make_node("Exp", ["w"], ["e"]), helper.make_node("Add", ["x", "e"], ["out"])],
              [("x", F, [3])], [("out", F, [3])], {"w": np.ones(3, np.float32)})
    g = lower_to_ir(m, _feeds(m, [np.zeros(3, np.float32)]))
    assert [n.op for n in g.nodes] == ["Exp", "Add"]


def test_identity_and_dead_code():
    m = chain_model()
    g = frontend.to_ir(m, _feeds(m, [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]))
    g = eliminate_dead_code(eliminate_identities(g))
    assert [n.op for n in g.nodes] == ["Add", "Relu", "Mul"]


def test_fusion_groups_the_chain():
    m = chain_model()
    g = lower_to_ir(m, _feeds(m, [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]))
    fused = fuse_elementwise(g, lambda n: True)
    assert [n.op for n in fused.nodes] == ["Fused"]
    assert [b.op for b in fused.nodes[0].attrs["body"]] == ["Add", "Relu", "Mul"]
    unfused = fuse_elementwise(g, lambda n: True, enabled=False)
    assert [n.op for n in unfused.nodes] == ["Fused"] * 3


def test_fusion_never_swallows_shared_values():
    m = model([helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Neg", ["e"], ["a"]),
               helper.make_node("Abs", ["e"], ["b"]), helper.make_node("Add", ["a", "b"], ["out"])],
              [("x", F, [4])], [("out", F, [4])])
    g = lower_to_ir(m, _feeds(m, [np.zeros(4, np.float32)]))
    fused = fuse_elementwise(g, lambda n: True)
    # e has two users, so it is computed once and both branches read it
    assert len(fused.nodes) == 2
    x = np.linspace(-1, 1, 4).astype(np.float32)
    np.testing.assert_allclose(compile(m)(x), reference(m, {"x": x})[0], rtol=1e-6)


def test_decompose_gemm_and_batchnorm():
    m = model([helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1, alpha=2.0)],
              [("x", F, [2, 3])], [("g", F, [2, 4])], {"w": np.ones((4, 3), np.float32), "b": np.ones(4, np.float32)})
    g = decompose(frontend.to_ir(m, _feeds(m, [np.zeros((2, 3), np.float32)])))
    assert [n.op for n in g.nodes] == ["MatMul", "Mul", "Add"]   # B's transpose folded


@pytest.mark.parametrize("fusion", [True, False])
def test_fused_and_unfused_agree_with_reference(fusion, tmp_path):
    rng = np.random.default_rng(0)
    m = model([helper.make_node("Mul", ["x", "y"], ["a"]), helper.make_node("Sigmoid", ["a"], ["s"]),
               helper.make_node("Sub", ["s", "y"], ["d"]), helper.make_node("Tanh", ["d"], ["out"])],
              [("x", F, [4, 5]), ("y", F, [5])], [("out", F, [4, 5])])
    x, y = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    got = compile(m, fusion=fusion, cache_dir=str(tmp_path))(x, y)
    np.testing.assert_allclose(got, reference(m, {"x": x, "y": y})[0], rtol=1e-5, atol=1e-6)


def test_value_specialised_inputs():
    m = model([helper.make_node("Reshape", ["x", "s"], ["out"])],
              [("x", F, [6]), ("s", I64, [2])], [("out", F, [2, 3])])
    assert frontend.value_specialised_inputs(m) == ["s"]
    fn = compile(m)
    x = np.arange(6, dtype=np.float32)
    assert fn(x, np.array([2, 3])).shape == (2, 3)
    assert fn(x, np.array([3, 2])).shape == (3, 2)   # new values, new specialisation


def test_unsupported_ops_are_all_listed_before_compiling():
    m = model([helper.make_node("Relu", ["x"], ["a"], name="ok"),
               helper.make_node("NoSuchOp", ["a"], ["b"], name="first", domain="custom.x"),
               helper.make_node("OtherOp", ["b"], ["c"], name="second", domain="custom.x")],
              [("x", F, [2])], [("c", F, [2])], domains=["custom.x"])
    with pytest.raises(frontend.UnsupportedModel) as e:
        compile(m)
    msg = str(e.value)
    assert "2 unsupported" in msg and "'first'" in msg and "'second'" in msg and "NoSuchOp" in msg
