"""target="cuda" end to end on small models (Numba's simulator in CI):
results against onnx.reference, device-array inputs and outputs, cached
loads, and the error when no GPU is present."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import config, cuda
from onnx import helper

from compiler import compile
from tests.helpers import F, model, reference

pytestmark = pytest.mark.skipif(not (config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="neither a GPU nor the CUDA simulator")


def _mlp():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["o"]),
             helper.make_node("Softmax", ["o"], ["p"], axis=-1),
             helper.make_node("ReduceMax", ["o"], ["m"], keepdims=0)]
    inits = {"w1": rng.standard_normal((5, 7)).astype(np.float32), "b1": rng.standard_normal(7).astype(np.float32),
             "w2": rng.standard_normal((7, 3)).astype(np.float32)}
    return model(nodes, [("x", F, ["batch", 5])], [("p", F, ["batch", 3]), ("m", F, ["batch"])], inits)


def test_mlp_matches_reference(tmp_path):
    m = _mlp()
    fn = compile(m, target="cuda", cache_dir=str(tmp_path))
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 5)).astype(np.float32)
        p, mx = fn(x)
        want = reference(m, {"x": x})
        assert isinstance(p, np.ndarray) and p.dtype == np.float32
        np.testing.assert_allclose(p, want[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mx, want[1], rtol=1e-5, atol=1e-6)


def test_device_arrays_in_and_out(tmp_path):
    m = _mlp()
    fn = compile(m, target="cuda", cache_dir=str(tmp_path), device_outputs=True)
    x = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)
    d_x = cuda.to_device(x)                       # anything with __cuda_array_interface__
    p, mx = fn(d_x)
    assert hasattr(p, "copy_to_host") and not isinstance(p, np.ndarray)
    np.testing.assert_allclose(p.copy_to_host(), reference(m, {"x": x})[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dtype float32"):
        fn(cuda.to_device(x.astype(np.float64)))


def test_outputs_never_alias_inputs(tmp_path):
    m = model([helper.make_node("Identity", ["x"], ["y"])], [("x", F, [3])], [("y", F, [3])])
    fn = compile(m, target="cuda", cache_dir=str(tmp_path), device_outputs=True)
    d_x = cuda.to_device(np.arange(3, dtype=np.float32))
    y = fn(d_x)
    y.copy_to_device(np.zeros(3, np.float32))
    np.testing.assert_array_equal(d_x.copy_to_host(), np.arange(3, dtype=np.float32))


def test_warm_load_in_new_process(tmp_path):
    m = _mlp()
    path = tmp_path / "mlp.onnx"
    path.write_bytes(m.SerializeToString())
    code = ("import sys, numpy as np; from compiler import compile;"
            "fn = compile(sys.argv[1], target='cuda', cache_dir=sys.argv[2]);"
            "p, _ = fn(np.ones((2, 5), np.float32)); print(fn.stats['built'], fn.stats['loaded'], float(p.sum()))")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM=os.environ.get("NUMBA_ENABLE_CUDASIM", "1"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = [subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "cache")], cwd=root, env=env,
                           capture_output=True, text=True) for _ in range(2)]
    outs = [r.stdout.split() for r in runs]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    assert outs[0][:2] == ["1", "0"] and outs[1][:2] == ["0", "1"]
    assert abs(float(outs[0][2]) - 2.0) < 1e-4 and outs[0][2] == outs[1][2]


def test_clear_error_without_gpu(tmp_path):
    code = ("import numpy as np; from compiler import compile; from tests.helpers import model, F;"
            "from onnx import helper;"
            "m = model([helper.make_node('Relu', ['x'], ['y'])], [('x', F, [2])], [('y', F, [2])]);"
            "compile(m, target='cuda', cache_dir=%r)" % str(tmp_path))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                       env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"))
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
                           capture_output=True, text=True, env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"))
    if probe.stdout.strip() == "True":
        pytest.skip("a GPU is present")
    assert r.returncode != 0
    assert "no usable CUDA GPU or driver" in r.stderr and "NUMBA_ENABLE_CUDASIM" in r.stderr
