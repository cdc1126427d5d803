"""The callable: calling conventions, input errors, symbolic dims, the disk
cache (warm load in a new process, corruption), and the runtime's isolation."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from compiler import compile
from runtime import InputError
from tests.helpers import F, model, reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def two_output_model():
    return model([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["r"]),
                  helper.make_node("Softmax", ["r"], ["p"], axis=-1)],
                 [("x", F, ["batch", 4])], [("r", F, ["batch", 3]), ("p", F, ["batch", 3])],
                 {"w": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)})


def test_calling_conventions(tmp_path):
    m = two_output_model()
    fn = compile(m, cache_dir=str(tmp_path))
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    want = reference(m, {"x": x})
    r, p = fn(x)
    r2, p2 = fn(x=x)
    d = fn.run({"x": x})
    for got in (r, r2, d["r"]):
        np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-6)
    for got in (p, p2, d["p"]):
        np.testing.assert_allclose(got, want[1], rtol=1e-5, atol=1e-6)


def test_symbolic_dim_takes_new_sizes(tmp_path):
    m = two_output_model()
    fn = compile(m, cache_dir=str(tmp_path))
    rng = np.random.default_rng(1)
    for batch in (1, 7, 3, 7):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        np.testing.assert_allclose(fn(x)[1], reference(m, {"x": x})[1], rtol=1e-5, atol=1e-6)
    assert fn.stats["built"] == 3     # batch 7 was reused, not rebuilt


@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 4), np.float64), ["'x'", "float32", "float64"]),
    (np.zeros((2, 4, 1), np.float32), ["'x'", "rank 2"]),
    (np.zeros((2, 5), np.float32), ["'x'", "dim 1 must be 4"]),
])
@pytest.mark.parametrize("after_good_call", [False, True])
def test_input_errors_name_the_input(bad, words, after_good_call, tmp_path):
    fn = compile(two_output_model(), cache_dir=str(tmp_path))
    if after_good_call:     # the steady-state path is armed for float32 (2, 4) inputs
        fn(np.zeros((2, 4), np.float32))
    with pytest.raises(InputError) as e:
        fn(bad)
    for w in words:
        assert w in str(e.value)
    with pytest.raises(InputError) as e:
        fn.run({"x": bad})
    assert "'x'" in str(e.value)


def test_steady_state_calls_take_other_layouts_and_kinds_through_the_checks(tmp_path):
    """After a first call arms the unchecked fast path, inputs that differ from it in
    layout, container or shape still give the reference's results."""
    m = two_output_model()
    fn = compile(m, cache_dir=str(tmp_path))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    fn(x)
    wide = rng.standard_normal((4, 8)).astype(np.float32)
    for got in (wide[:2, ::2], wide[::2, :4], x.tolist(), wide[:3, :4]):
        want = reference(m, {"x": np.asarray(got, np.float32)})
        np.testing.assert_allclose(fn(got)[1], want[1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fn.run({"x": got})["r"], want[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fn.run([("x", got)])["p"], want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fn(x=x)[0], reference(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_missing_and_unknown_inputs(tmp_path):
    fn = compile(two_output_model(), cache_dir=str(tmp_path))
    fn(np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match="unknown input 'y'"):
        fn.run({"y": np.zeros((1, 4), np.float32)})
    with pytest.raises(InputError, match="missing input 'x'"):
        fn()
    with pytest.raises(InputError, match="unknown input 'y'"):
        fn(y=np.zeros((1, 4), np.float32))


def _run_in_new_process(code, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


LOAD = ("import sys, numpy as np; from compiler import compile; "
        "fn = compile(sys.argv[1], cache_dir=sys.argv[2]); "
        "y = fn(np.ones((2, 4), np.float32)); print(fn.stats['built'], fn.stats['loaded'], float(y[1].sum()))")


def test_second_process_loads_from_disk_and_corruption_is_rebuilt(tmp_path):
    import onnx
    path = str(tmp_path / "m.onnx")
    onnx.save(two_output_model(), path)
    cache = str(tmp_path / "cache")
    built, loaded, total = _run_in_new_process(LOAD, path, cache).split()
    assert (built, loaded) == ("1", "0")
    built, loaded, total2 = _run_in_new_process(LOAD, path, cache).split()
    assert (built, loaded) == ("0", "1") and total2 == total
    for blob in glob.glob(os.path.join(cache, "models", "*", "*.bin")):   # corrupt the weights
        with open(blob, "r+b") as f:
            f.seek(60)
            f.write(b"garbage!")
    built, loaded, total3 = _run_in_new_process(LOAD, path, cache).split()
    assert (built, loaded) == ("1", "0") and total3 == total


def test_bytecode_is_cached_and_a_corrupt_one_is_not_run(tmp_path):
    """The generated modules' bytecode is written with the entry (PYTHONDONTWRITEBYTECODE or
    not); a .pyc whose contents the manifest does not name is dropped and the checked source
    imported instead."""
    import onnx
    path = str(tmp_path / "m.onnx")
    onnx.save(two_output_model(), path)
    cache = str(tmp_path / "cache")
    built, loaded, total = _run_in_new_process(LOAD, path, cache).split()
    pycs = glob.glob(os.path.join(cache, "src", "__pycache__", "onnxjit_g_*.pyc"))
    assert built == "1" and len(pycs) == 1
    import builtins
    import marshal
    with open(pycs[0], "r+b") as f:      # well-formed bytecode, header and all, of other code
        header = f.read(16)
        f.seek(0)
        f.write(header + marshal.dumps(builtins.compile("raise RuntimeError('unchecked bytecode ran')", "m", "exec")))
        f.truncate()
    built, loaded, total2 = _run_in_new_process(LOAD, path, cache).split()
    assert (built, loaded) == ("0", "1") and total2 == total


def test_runtime_imports_neither_compiler_targets_nor_onnx():
    out = _run_in_new_process("import sys, runtime; print(sorted(m for m in ('compiler', 'targets', 'onnx') if m in sys.modules))")
    assert out.strip() == "[]"


def test_model_text_never_reaches_generated_code(tmp_path):
    evil = "x'); import os; os.system('echo pwned') #"
    m = model([helper.make_node("Relu", [evil], ["o\"+__import__('os').getcwd()+\""], name="n'); evil()")],
              [(evil, F, [2])], [("o\"+__import__('os').getcwd()+\"", F, [2])])
    fn = compile(m, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(fn(np.array([-1, 2], np.float32)), [0, 2])
    for src in glob.glob(os.path.join(str(tmp_path), "src", "*.py")):
        text = open(src).read()
        assert "pwned" not in text and "getcwd" not in text and "evil" not in text


def test_cli_runs_the_bundled_model(tmp_path):
    out = subprocess.run([sys.executable, "-m", "compiler.cli", "run", "--repeat", "3", "--cache-dir", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    assert "output probs: float32[1, 10]" in out.stdout
    assert "cold compile" in out.stdout and "warm load" in out.stdout and "per-call latency" in out.stdout


def test_identical_kernels_are_one_module_shared_by_models(tmp_path):
    """A kernel's module is named by its text, so two models (or two shapes of one)
    that generate the same kernel share its source file and Numba's cache of it."""
    def relu_exp(shape, weight):
        return model([helper.make_node("Mul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["r"])],
                     [("x", F, shape)], [("r", F, shape)], {"w": np.full(shape, weight, np.float32)})
    fns = [compile(relu_exp(s, w), cache_dir=str(tmp_path)) for s, w in (([2, 4], 0.5), ([3, 5], -2.0))]
    assert len(glob.glob(os.path.join(str(tmp_path), "src", "onnxjit_k_*.py"))) == 1
    for fn, (s, w) in zip(fns, (([2, 4], 0.5), ([3, 5], -2.0))):
        x = np.random.default_rng(1).standard_normal(s).astype(np.float32)
        np.testing.assert_allclose(fn(x), np.maximum(x * np.float32(w), 0))


def test_big_graphs_run_as_python_and_match(tmp_path, monkeypatch):
    """Above the line limit the graph function is plain Python calling the same kernels."""
    m = two_output_model()
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    monkeypatch.setenv("ONNXJIT_GRAPH_JIT", "0")
    fn = compile(m, cache_dir=str(tmp_path))
    for got, want in zip(fn(x), reference(m, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    src = glob.glob(os.path.join(str(tmp_path), "src", "onnxjit_g_*.py"))
    assert len(src) == 1 and "@njit(cache=True, error_model='numpy')\ndef graph" not in open(src[0]).read()


@pytest.mark.parametrize("env,want", [({}, "None 100000"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None"),
                                      ({"GOMP_SPINCOUNT": "100"}, "None 100")])
def test_openmp_workers_spin_briefly_unless_the_user_says(env, want):
    """runtime sets GOMP_SPINCOUNT=100000 before Numba's OpenMP pool starts, and leaves
    the user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT alone."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import os, runtime; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env=dict(base, **env), capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True).stdout
    assert out.strip() == str(want)


def test_cached_constants_are_64_byte_aligned_and_writable(tmp_path):
    """The weights blob is read into an aligned buffer: every constant starts on a cache line
    (a bytearray started 16 bytes off and the LSTM ran 1.3x slower), writable as at build time."""
    from runtime.cache import ALIGN, _pack, _unpack
    import hashlib
    arrays = [np.arange(n, dtype=dt) for n, dt in [(3, np.float32), (17, np.float64), (5, np.int8), (100, np.float32)]]
    for trial in range(8):   # the allocator's offset varies; every try must come back aligned
        buf, layout = _pack(arrays)
        path = tmp_path / f"c{trial}.bin"
        path.write_bytes(buf)
        got = _unpack(str(path), layout, hashlib.sha256(buf).hexdigest())
        for a, g in zip(arrays, got):
            np.testing.assert_array_equal(g, a)
            assert g.ctypes.data % ALIGN == 0 and g.flags.writeable


_PIN_SCRIPT = """
import json, os, threading
import numpy as np
from runtime import threads
before = sorted(os.sched_getaffinity(0))
threads.configure(2)
ids = np.zeros(2, np.int64)
threads._thread_ids(ids)
later = []
t = threading.Thread(target=lambda: later.append(sorted(os.sched_getaffinity(0))))
t.start(); t.join()
print(json.dumps({"before": before, "main": sorted(os.sched_getaffinity(0)), "later": later[0],
                  "caller": threading.get_native_id(), "ids": ids.tolist(),
                  "masks": [sorted(os.sched_getaffinity(i)) for i in ids.tolist()]}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning needs Linux and two CPUs")
@pytest.mark.parametrize("pin", ["1", "0"])
def test_openmp_workers_are_pinned_and_the_caller_is_not(pin):
    """runtime.threads.pin_workers: the worker thread of a 2-thread parallel loop on a CPU of its
    own, the caller's mask and that of a thread it starts after unchanged; ONNXJIT_PIN_THREADS=0
    pins nothing."""
    import json
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_PROC_BIND", "GOMP_CPU_AFFINITY")}
    env.update(NUMBA_NUM_THREADS="2", ONNXJIT_PIN_THREADS=pin)
    out = subprocess.run([sys.executable, "-c", _PIN_SCRIPT], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["main"] == r["before"] and r["later"] == r["before"]
    assert r["ids"][0] == r["caller"] and r["ids"][1] != r["caller"]
    assert r["masks"][0] == r["before"]
    assert r["masks"][1] == ([r["before"][1]] if pin == "1" else r["before"])
