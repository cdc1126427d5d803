"""Memory planning (targets/cpu/memplan.py): live ranges through views, no two
live buffers sharing bytes, outputs kept out of the arena; and end to end,
planned models agree with unplanned ones and with onnx.reference, across
consecutive calls and concurrent threads."""
import os
import sys
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import compile
from compiler.driver import lower_to_ir
from runtime.arena import ALIGN, Arenas
from targets import cpu
from targets.cpu import memplan
from tests.helpers import F, model, reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(0)


def w(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# models ---------------------------------------------------------------------------

def residual_cnn():
    """conv-relu-conv + skip, then a second block and a pooled head."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["s1"]),
             helper.make_node("Relu", ["s1"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Add", ["r3", "r2"], ["s2"]),
             helper.make_node("GlobalAveragePool", ["s2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    inits = {"w1": w(8, 8, 3, 3), "b1": w(8), "w2": w(8, 8, 3, 3), "b2": w(8), "w3": w(8, 8, 3, 3), "b3": w(8)}
    return model(nodes, [("x", F, (1, 8, 12, 12))], [("y", F, (1, 8))], inits), {"x": (1, 8, 12, 12)}


def attention():
    """One self-attention block with 4 heads, residual and layer norm."""
    s, d, h = 16, 32, 4
    nodes = []
    for n in "qkv":
        nodes += [helper.make_node("MatMul", ["x", f"W{n}"], [f"{n}0"]),
                  helper.make_node("Reshape", [f"{n}0", "split"], [f"{n}1"]),
                  helper.make_node("Transpose", [f"{n}1"], [f"{n}2"], perm=[0, 2, 1, 3])]
    nodes += [helper.make_node("Transpose", ["k2"], ["kt"], perm=[0, 1, 3, 2]),
              helper.make_node("MatMul", ["q2", "kt"], ["sc"]),
              helper.make_node("Mul", ["sc", "scale"], ["sc2"]),
              helper.make_node("Softmax", ["sc2"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v2"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merge"], ["om"]),
              helper.make_node("MatMul", ["om", "Wo"], ["proj"]),
              helper.make_node("Add", ["proj", "x"], ["res"]),
              helper.make_node("LayerNormalization", ["res", "gamma", "beta"], ["y"], axis=-1)]
    inits = {"Wq": w(d, d), "Wk": w(d, d), "Wv": w(d, d), "Wo": w(d, d),
             "split": np.array([1, s, h, d // h], np.int64), "merge": np.array([1, s, d], np.int64),
             "scale": np.array(1 / np.sqrt(d // h), np.float32), "gamma": 1 + w(d), "beta": w(d)}
    return model(nodes, [("x", F, (1, s, d))], [("y", F, (1, s, d))], inits), {"x": (1, s, d)}


def reshape_chain():
    """Views (reshape, flatten) of early results read late, next to transposes and slices."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "flat"], ["rf"]),
             helper.make_node("Transpose", ["rf"], ["rt"], perm=[1, 0]),
             helper.make_node("Mul", ["rt", "c"], ["m"]),
             helper.make_node("Sigmoid", ["m"], ["sg"]),
             helper.make_node("Transpose", ["sg"], ["st"], perm=[1, 0]),
             helper.make_node("Reshape", ["st", "back"], ["sb"]),
             helper.make_node("Tanh", ["sb"], ["t"]),
             helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["sl"]),
             helper.make_node("Exp", ["sl"], ["e"]),
             helper.make_node("Concat", ["e", "sl", "e"], ["cc"], axis=1),
             helper.make_node("Reshape", ["cc", "flat2"], ["cf"]),
             helper.make_node("Reshape", ["r", "flat2"], ["rf2"]),
             helper.make_node("Add", ["cf", "rf2"], ["y"])]
    inits = {"flat": np.array([6, 20], np.int64), "back": np.array([2, 3, 4, 5], np.int64),
             "c": w(20, 1) + 1, "starts": np.array([1], np.int64), "ends": np.array([2], np.int64),
             "axes": np.array([1], np.int64), "flat2": np.array([2, -1], np.int64)}
    return model(nodes, [("x", F, (2, 3, 4, 5))], [("y", F, (2, 60))], inits), {"x": (2, 3, 4, 5)}


def output_consumed_later():
    """Outputs that later nodes read (one directly, one through a reshape view), and one that is an input."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("Reshape", ["a", "shp"], ["ar"]),
             helper.make_node("Sigmoid", ["ar"], ["s"]),
             helper.make_node("Mul", ["s", "ar"], ["m"]),
             helper.make_node("Reshape", ["m", "back"], ["mb"]),
             helper.make_node("MatMul", ["mb", "w2"], ["z"]),
             helper.make_node("Add", ["z", "a"], ["y"]),
             helper.make_node("Identity", ["x"], ["xi"])]
    inits = {"w": w(12, 12), "w2": w(12, 12), "shp": np.array([4, 3, 4], np.int64), "back": np.array([4, 12], np.int64)}
    return model(nodes, [("x", F, (4, 12))],
                 [("a", F, (4, 12)), ("y", F, (4, 12)), ("ar", F, (4, 3, 4)), ("xi", F, (4, 12))], inits), {"x": (4, 12)}


MODELS = {"residual_cnn": residual_cnn(), "attention": attention(), "reshape_chain": reshape_chain(),
          "output_consumed_later": output_consumed_later()}


def feeds_for(shapes, seed):
    r = np.random.default_rng(seed)
    return {k: r.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


# the planner alone --------------------------------------------------------------------

LINES = [
    "v1 = np.empty((4,), np.float32)",      # 0
    "k0(v1, x0)",                           # 1
    "v2 = v1.reshape((2, 2))",              # 2: a view: v1 lives while v2 does
    "v3 = np.empty((2, 2), np.float32)",    # 3
    "k1(v3, v2)",                           # 4
    "v4 = v3[0:1].copy()",                  # 5: a copy: v3 ends here
    "v5 = np.empty((2, 2), np.float32)",    # 6
    "k2(v5, v4)",                           # 7
    "v6 = np.empty((2, 2), np.float32)",    # 8
    "k3(v6, v5, v2)",                       # 9
    "v7 = L_x.f(v5)",                       # 10: a library's result may be a view of v5
    "v8 = np.empty((0, 3), np.float32)",    # 11
    "v9 = np.empty((3,), np.int64)",        # 12
    "k4(v9, v7, v8)",                       # 13
]


def test_live_ranges_follow_views_and_outputs():
    bufs = memplan.live_ranges(LINES, ["v6", "v9.copy()"])
    got = {n: (b.start, b.end, b.escapes) for n, b in bufs.items()}
    n = len(LINES)
    assert got == {"v1": (0, 9, False), "v3": (3, 5, False), "v5": (6, 13, False), "v6": (8, n, True),
                   "v8": (11, 13, False), "v9": (12, n, False)}


def test_returned_view_keeps_its_base_out_of_the_arena():
    lines, arena, stats = memplan.plan(LINES[:3], ["v2"])
    assert arena is None and lines == LINES[:3]


def test_plan_rewrites_buffers_as_arena_views():
    lines, arena, stats = memplan.plan(LINES, ["v6", "v9.copy()"])
    bufs, size = stats["buffers"], arena["bytes"]
    assert arena["views"] == ["float32", "int64"]
    assert bufs["v6"].offset is None and bufs["v8"].offset is None     # an output; empty
    assert lines[8] == LINES[8] and lines[11] == LINES[11]
    assert lines[0] == "v1 = arena_float32[%d:%d].reshape((4,))" % (bufs["v1"].offset // 4, bufs["v1"].offset // 4 + 4)
    assert bufs["v3"].offset == bufs["v9"].offset or bufs["v1"].offset == bufs["v9"].offset  # reused
    check_layout(bufs, size)


def check_layout(bufs, size):
    """No two simultaneously live planned buffers share a byte, all offsets aligned,
    escaping buffers outside."""
    planned = [b for b in bufs.values() if b.offset is not None]
    for b in bufs.values():
        assert not (b.escapes and b.offset is not None)
    for b in planned:
        assert b.offset % ALIGN == 0 and b.offset + b.nbytes <= size
    for i, a in enumerate(planned):
        for b in planned[i + 1:]:
            live = a.start <= b.end and b.start <= a.end
            overlap = a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes
            assert not (live and overlap), (a, b)


def built(m, shapes, dtype=np.float32, **options):
    g = lower_to_ir(m, {k: (dtype, s, None) for k, s in shapes.items()})
    return cpu.build(g, {"fusion": True, "threads": 1, **options})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layout_of_built_graphs(name):
    m, shapes = MODELS[name]
    program = built(m, shapes)
    stats = program["memory"]
    assert program["arena"]["bytes"] == stats["arena"] > 0
    check_layout(stats["buffers"], stats["arena"])
    returned = program["source"].rstrip().splitlines()[-1]
    for b in stats["buffers"].values():       # what the caller gets is never arena memory
        if b.offset is not None:
            assert b.name not in returned.replace(",", " ").replace("(", " ").split()


@pytest.mark.parametrize("name", ["bert_small", "resnet18_half"])
def test_layout_of_bench_models(name):
    path = os.path.join(ROOT, "bench", "models", name + ".onnx")
    if not os.path.exists(path):
        pytest.skip("bench model not built")
    inputs = np.load(path.replace(".onnx", ".inputs.npz"))
    g = lower_to_ir(onnx.load(path), {k: (a.dtype, a.shape, None) for k, a in inputs.items()})
    stats = cpu.build(g, {"fusion": True, "threads": 1})["memory"]
    check_layout(stats["buffers"], stats["arena"])
    assert stats["arena"] < stats["planned"] / 2


def test_switch_off_keeps_np_empty():
    m, shapes = MODELS["attention"]
    program = built(m, shapes, memory_plan=False)
    assert program["arena"] is None and "arena" not in program["source"]


# end to end -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return {name: {plan: compile(m, cache_dir=cache, memory_plan=plan) for plan in (True, False)}
            for name, (m, _) in MODELS.items()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_planned_matches_unplanned_and_reference(name, compiled):
    m, shapes = MODELS[name]
    feeds = feeds_for(shapes, 1)
    on, off = compiled[name][True].run(feeds), compiled[name][False].run(feeds)
    for (k, got), want in zip(on.items(), reference(m, feeds)):
        np.testing.assert_array_equal(got, off[k])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_consecutive_calls_are_independent(name, compiled):
    m, shapes = MODELS[name]
    fn = compiled[name][True]
    f1, f2 = feeds_for(shapes, 2), feeds_for(shapes, 3)
    first = fn.run(f1)
    kept = {k: v.copy() for k, v in first.items()}
    second = fn.run(f2)
    arenas = next(iter(fn._specs.values()))[1][4]
    assert len(arenas.free) == 1                 # one arena, reused
    for k, v in first.items():
        np.testing.assert_array_equal(v, kept[k])
        assert not any(np.shares_memory(v, a) for a in arenas.free[0])
    for (k, v), want in zip(second.items(), reference(m, f2)):
        np.testing.assert_allclose(v, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["residual_cnn", "attention"])
def test_concurrent_threads(name, compiled):
    m, shapes = MODELS[name]
    fn = compiled[name][True]
    feeds = [feeds_for(shapes, 10 + i) for i in range(2)]
    want = [compiled[name][False].run(f) for f in feeds]
    start, errors = threading.Barrier(2), []

    def work(i):
        start.wait()
        for _ in range(40):
            got = fn.run(feeds[i])
            for k, v in got.items():
                if not np.array_equal(v, want[i][k]):
                    errors.append((i, k))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)      # switch threads often: between the kernels of a Python-mode graph
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors


def test_a_call_finding_the_arena_busy_uses_its_own(compiled):
    m, shapes = MODELS["attention"]
    fn = compiled["attention"][True]
    arenas = next(iter(fn._specs.values()))[1][4]
    busy = arenas.take()                 # as if another thread were inside the graph
    busy[0][:] = np.nan
    feeds = feeds_for(shapes, 6)
    np.testing.assert_allclose(fn.run(feeds)["y"], reference(m, feeds)[0], rtol=1e-4, atol=1e-5)
    assert np.isnan(busy[0]).all()
    arenas.give(busy)
    assert len(arenas.free) == 2


def test_a_busy_arena_is_not_shared():
    arenas = Arenas({"bytes": 128, "views": ["float32", "uint8"]})
    a = arenas.take()
    b = arenas.take()
    assert not np.shares_memory(a[0], b[0]) and np.shares_memory(a[0], a[1])
    assert a[0].ctypes.data % ALIGN == 0 and a[0].size == 32 and a[1].size == 128
    arenas.give(b)
    arenas.give(a)
    assert arenas.take() is a


def test_environment_switch(monkeypatch, tmp_path):
    m, shapes = MODELS["output_consumed_later"]
    monkeypatch.setenv("ONNXJIT_MEMORY_PLAN", "0")
    fn = compile(m, cache_dir=str(tmp_path))
    assert next(iter(fn._specs.values()))[1][4] is None
    feeds = feeds_for(shapes, 4)
    for (k, v), want in zip(fn.run(feeds).items(), reference(m, feeds)):
        np.testing.assert_allclose(v, want, rtol=1e-4, atol=1e-5)


def test_int_and_bool_buffers(tmp_path):
    """Buffers of other types are typed views too (here int64 and bool between kernels)."""
    I = TensorProto.INT64
    nodes = [helper.make_node("Add", ["x", "one"], ["a"]),
             helper.make_node("Greater", ["a", "zero"], ["g"]),
             helper.make_node("Transpose", ["g"], ["gt"], perm=[1, 0]),
             helper.make_node("Not", ["gt"], ["n"]),
             helper.make_node("Cast", ["n"], ["c"], to=I),
             helper.make_node("ReduceSum", ["c"], ["s"], keepdims=0),
             helper.make_node("Mul", ["a", "s"], ["y"])]
    m = model(nodes, [("x", I, (4, 4))], [("y", I, (4, 4))],
              {"one": np.array(1, np.int64), "zero": np.array(0, np.int64)})
    x = np.random.default_rng(5).integers(-4, 4, (4, 4))
    assert "arena_bool_[" in built(m, {"x": (4, 4)}, dtype=np.int64)["source"]
    for plan in (True, False):
        np.testing.assert_array_equal(compile(m, cache_dir=str(tmp_path), memory_plan=plan)(x), reference(m, {"x": x})[0])
