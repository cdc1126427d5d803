"""Control flow, sequences and optionals through the host plan (compiler.partition,
runtime.plan), against onnx's reference evaluator."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile
from runtime import CompiledModel, InputError, PlanModel
from tests.helpers import F, model, reference

I64, B = TensorProto.INT64, TensorProto.BOOL


def graph(nodes, inputs, outputs, name="body"):
    """A subgraph; inputs/outputs: [(name, elem_type, shape)]."""
    return helper.make_graph(nodes, name, [helper.make_tensor_value_info(*v) for v in inputs],
                             [helper.make_tensor_value_info(*v) for v in outputs])


def onnxruntime(m, feeds):
    import onnxruntime as ort
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def check(m, feeds, tmp_path, oracle=reference):
    fn = compile(m, cache_dir=str(tmp_path))
    assert isinstance(fn, PlanModel)
    got = fn.run(feeds)
    for name, want in zip([o.name for o in m.graph.output], oracle(m, feeds)):
        if isinstance(want, list):
            assert len(got[name]) == len(want)
            for g, w in zip(got[name], want):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        else:
            assert got[name].shape == want.shape and got[name].dtype == want.dtype
            np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)
    return fn


def test_loop_until_a_data_dependent_condition_with_scan_outputs(tmp_path):
    body = graph([helper.make_node("Add", ["y_in", "x"], ["y_out"]),
                  helper.make_node("ReduceSum", ["y_out"], ["total"], keepdims=0),
                  helper.make_node("Less", ["total", "limit"], ["cond_out"]),
                  helper.make_node("Cast", ["i"], ["fi"], to=F),
                  helper.make_node("Mul", ["y_out", "fi"], ["scan"])],
                 [("i", I64, []), ("cond_in", B, []), ("y_in", F, [3])],
                 [("cond_out", B, []), ("y_out", F, [3]), ("scan", F, [3])])
    m = model([helper.make_node("Loop", ["", "go", "y0"], ["y", "scans"], body=body)],
              [("x", F, [3]), ("limit", F, []), ("y0", F, [3])], [("y", F, [3]), ("scans", F, [None, 3])],
              {"go": np.array(True)})
    x = np.array([0.5, 1.0, 1.5], np.float32)
    y0 = np.zeros(3, np.float32)
    fn = check(m, {"x": x, "limit": np.array(10, np.float32), "y0": y0}, tmp_path)
    built = fn.stats["built"]
    y, scans = fn(x, np.array(30, np.float32), y0)     # another trip count, same compiled body
    assert scans.shape == (10, 3) and fn.stats["built"] == built > 0


def test_loop_reads_an_outer_scope_value_and_a_trip_count(tmp_path):
    body = graph([helper.make_node("Add", ["y_in", "w"], ["y_out"]),
                  helper.make_node("Identity", ["cond_in"], ["cond_out"])],
                 [("i", I64, []), ("cond_in", B, []), ("y_in", F, [2, 2])],
                 [("cond_out", B, []), ("y_out", F, [2, 2])])
    m = model([helper.make_node("Relu", ["x"], ["w"]),
               helper.make_node("Loop", ["n", "go", "x"], ["y"], body=body),
               helper.make_node("Mul", ["y", "x"], ["z"])],
              [("x", F, [2, 2]), ("n", I64, [])], [("z", F, [2, 2])], {"go": np.array(True)})
    x = np.array([[1, -2], [3, -4]], np.float32)
    check(m, {"x": x, "n": np.array(4, np.int64)}, tmp_path)


def test_if_branches_of_different_shapes(tmp_path):
    then = graph([helper.make_node("Concat", ["x", "x"], ["t"], axis=0)], [], [("t", F, [None])], "then")
    other = graph([helper.make_node("ReduceSum", ["x"], ["e"], keepdims=1)], [], [("e", F, [1])], "else")
    m = model([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
               helper.make_node("Greater", ["s", "zero"], ["c"]),
               helper.make_node("If", ["c"], ["r"], then_branch=then, else_branch=other)],
              [("x", F, [3])], [("r", F, [None])], {"zero": np.array(0, np.float32)})
    check(m, {"x": np.array([1, 2, 3], np.float32)}, tmp_path)
    check(m, {"x": np.array([-1, -2, 3], np.float32)}, tmp_path)


def test_scan_in_reverse(tmp_path):
    """onnx.reference has no reverse Scan: onnxruntime is the oracle."""
    body = graph([helper.make_node("Add", ["acc_in", "xs"], ["acc_out"]),
                  helper.make_node("Identity", ["acc_out"], ["ys"])],
                 [("acc_in", F, [2]), ("xs", F, [2])], [("acc_out", F, [2]), ("ys", F, [2])])
    m = model([helper.make_node("Scan", ["init", "x"], ["acc", "y"], body=body, num_scan_inputs=1,
                                scan_input_directions=[1], scan_output_directions=[1], scan_input_axes=[1], scan_output_axes=[1])],
              [("init", F, [2]), ("x", F, [2, 5])], [("acc", F, [2]), ("y", F, [2, 5])])
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    check(m, {"init": np.zeros(2, np.float32), "x": x}, tmp_path, oracle=onnxruntime)


def test_sequence_pipeline(tmp_path):
    body = graph([helper.make_node("Mul", ["e", "e"], ["sq"]), helper.make_node("Add", ["sq", "b"], ["o"])],
                 [("e", F, [None, 3]), ("b", F, [3])], [("o", F, [None, 3])])
    g = helper.make_graph(
        [helper.make_node("SplitToSequence", ["x", "split"], ["seq"], axis=0),
         helper.make_node("SequenceMap", ["seq", "b"], ["mapped"], body=body),
         helper.make_node("ConcatFromSequence", ["mapped"], ["y"], axis=0),
         helper.make_node("SequenceLength", ["mapped"], ["n"])],
        "t", [helper.make_tensor_value_info("x", F, [5, 3]), helper.make_tensor_value_info("b", F, [3])],
        [helper.make_tensor_value_info("y", F, [5, 3]), helper.make_tensor_value_info("n", I64, []),
         helper.make_tensor_sequence_value_info("mapped", F, None)],
        [helper.make_tensor(name="split", data_type=I64, dims=[2], vals=[2, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    fn = check(m, {"x": x, "b": np.ones(3, np.float32)}, tmp_path)
    with pytest.raises(InputError, match="'b'"):
        fn(x, np.ones(4, np.float32))


def test_sequence_input_is_checked(tmp_path):
    g = helper.make_graph([helper.make_node("SequenceAt", ["s", "i"], ["y"])], "t",
                          [helper.make_tensor_sequence_value_info("s", F, ["n"]),
                           helper.make_tensor_value_info("i", I64, [])],
                          [helper.make_tensor_value_info("y", F, ["n"])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    fn = compile(m, cache_dir=str(tmp_path))
    seq = [np.ones(2, np.float32), np.arange(3, dtype=np.float32)]
    np.testing.assert_array_equal(fn(seq, np.array(-1, np.int64)), seq[-1])
    with pytest.raises(InputError, match="'s'.*sequence"):
        fn(seq[0], np.array(0, np.int64))
    with pytest.raises(InputError, match="'s'.*dtype"):
        fn([np.ones(2, np.int32)], np.array(0, np.int64))


def test_plain_models_skip_the_plan(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])])
    assert isinstance(compile(m, cache_dir=str(tmp_path)), CompiledModel)


def test_unsupported_ops_inside_subgraphs_are_listed():
    from compiler import UnsupportedModel
    then = graph([helper.make_node("NoSuchOp", ["x"], ["t"], name="inner", domain="custom.x")], [], [("t", F, [2])])
    other = graph([helper.make_node("Identity", ["x"], ["e"])], [], [("e", F, [2])])
    m = model([helper.make_node("If", ["c"], ["r"], name="branch", then_branch=then, else_branch=other)],
              [("c", B, []), ("x", F, [2])], [("r", F, [2])], domains=["custom.x"])
    with pytest.raises(UnsupportedModel, match="'branch'.*then_branch.*'inner'.*NoSuchOp"):
        compile(m)


def test_segments_end_after_data_dependent_shapes(tmp_path, monkeypatch):
    """An op whose output shape depends on data (NonZero...) ends a segment, so its
    output may feed other nodes; Relu stands in for one here."""
    from compiler import partition
    monkeypatch.setattr(partition, "DATA_DEPENDENT_SHAPE", {"Relu"})
    m = model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "x"], ["y"])],
              [("x", F, [4])], [("y", F, [4])])
    fn = check(m, {"x": np.array([-1, 2, -3, 4], np.float32)}, tmp_path)
    assert [s.outputs for s in fn.graph.steps] == [["a"], ["y"]]
