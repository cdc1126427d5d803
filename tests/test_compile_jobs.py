"""A model's first compile shared between processes (runtime/compile_jobs.py): which graphs may
be primed, the unit locks, the callbacks' order, and a cold compile through helpers checked
against the reference."""
import json
import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest

from runtime import compile_jobs
from targets.cpu.kernels import callback_conv_gemm, conv_small, jit, sgemm  # noqa: F401 (register their callbacks)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STRAIGHT = """
def graph(x0, c0, arena_float32):
    v1 = arena_float32[0:64].reshape((1, 64))
    L_nn.global_pool(x0.reshape((1, 64, 4)), v1, False)
    k0(v1.reshape(64), c0, np.empty((0, 0), np.float32), (1, 2), -1.5)
    return (v1,)
"""


@pytest.mark.parametrize("line", [
    "t1 = k0(v1)\n    v2 = t1.reshape(64)",                       # a kernel's result computed on
    "t1 = k0(v1)\n    k0(t1[0:2])",
    "t1 = k0(v1)\n    t1(v1)",
    "v2 = v1 + 1",                                                  # host arithmetic
    "v2 = np.ascontiguousarray(v1)",                                # numpy on a value
    "k0(v1, out=v1)",                                               # keywords
    "for i in range(3):\n        k0(v1)",                          # control flow
    "v2 = v1[int(x0[0]):]",                                         # an index read from data
])
def test_only_straight_line_graphs_are_primed(line):
    assert compile_jobs.primable(STRAIGHT)
    bad = STRAIGHT.replace("    return", f"    {line}\n    return")
    assert not compile_jobs.primable(bad), bad


def test_a_kernel_result_may_go_on_to_kernels():
    passed = STRAIGHT.replace("    return", "    t1 = L_conv_small.scale_panels(c0, v1.reshape(64), 16, 1)\n    k0(t1, v1)\n    return")
    assert compile_jobs.primable(passed)
    assert compile_jobs.primable(passed.replace("return (v1,)", "return (v1, t1)"))


def test_a_unit_held_elsewhere_is_skipped_or_waited_for(tmp_path):
    with compile_jobs.shared(str(tmp_path)):
        with compile_jobs.unit("a", wait=False) as first:
            with compile_jobs.unit("a", wait=False) as second:   # flock: a second open file conflicts
                assert first and not second
            with compile_jobs.unit("b", wait=False) as other:
                assert other
    with compile_jobs.unit("a", wait=False) as alone:              # not sharing: always ours
        assert alone


def test_callbacks_know_the_callbacks_they_call():
    registered = {p[0] for p in jit._pending} | jit._bound
    assert jit._callees(callback_conv_gemm.conv_gemm32_callback, registered) >= {sgemm.SYMBOL}
    assert jit._callees(conv_small.rows_callback, registered) <= {conv_small.SYMBOL}


@numba.njit(cache=False)
def add(a, b, out):
    out[:] = a + b


@numba.njit(cache=False)
def neg(a, out):
    out[:] = -a


def graph(x, y):
    add(x, x, y)
    neg(y, x)
    return (y,)


def test_prime_skips_a_held_kernel_then_waits_for_it(tmp_path):
    x, y = np.ones(4, np.float32), np.zeros(4, np.float32)
    sig = add.typeof_pyval(x), add.typeof_pyval(x), add.typeof_pyval(y)
    held = threading.Event()

    def hold():
        with compile_jobs.shared(str(tmp_path)), compile_jobs.unit(compile_jobs._unit_key(add, sig), wait=False):
            held.set()
            time.sleep(1.0)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    with compile_jobs.shared(str(tmp_path)):
        got = compile_jobs.prime(graph, (x, y))
    t.join()
    assert got == {"units": 2, "compiled_here": 1, "waited": 1}
    assert sig in add.overloads and len(neg.overloads) == 1
    assert np.all(x == 1) and np.all(y == 0)          # recorded, never run
    graph(x, y)
    assert np.all(y == 2) and np.all(x == -2)


_COLD = """
import os, sys, numpy as np
from compiler import compile
from tests.helpers import reference
from tests.test_compile_cost import _mobile_block
m, feeds = _mobile_block()
fn = compile(m, cache_dir=sys.argv[1], threads=2)
np.testing.assert_allclose(fn(**feeds), reference(m, feeds)[0], rtol=1e-4, atol=1e-4)
primed = fn.stats["primed"]
assert primed["units"] >= 3 and primed["compiled_here"] + primed["waited"] <= primed["units"], primed
for name, mod in sys.modules.items():
    if name.startswith("onnxjit_lib_jit_"):
        assert not mod._pending, mod._pending
assert not os.listdir(os.path.join(sys.argv[1], "locks", fn.key))
print(fn.key, next(f[:-5] for f in os.listdir(os.path.join(sys.argv[1], "models", fn.key)) if f.endswith(".json")))
"""


def test_a_cold_compile_with_a_helper_matches_the_reference(tmp_path):
    """An empty Numba cache, two processes: the model's output checked, every callback bound,
    the locks cleaned up; then the helper's own run over the same entry, waited for, succeeds."""
    env = dict(os.environ, ONNXJIT_COMPILE_JOBS="2", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    run = subprocess.run([sys.executable, "-c", _COLD, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    key, spec = run.stdout.split()
    manifest = json.load(open(tmp_path / "models" / key / (spec + ".json")))
    assert manifest["args"] == ["x"]
    command = compile_jobs.helper_command(str(tmp_path), key, spec, [("<f4", [2, 3, 48, 48])])
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=dict(env, ONNXJIT_DEBUG_JOBS="1"))
    assert run.returncode == 0 and "units" in run.stderr, run.stderr
