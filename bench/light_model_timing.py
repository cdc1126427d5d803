"""Cold compile, warm load (new process) and per-call latency next to onnxruntime,
interleaved in one process, for a light model from the onnx wheel.

    python bench/light_model_timing.py light_resnet50 [--repeat 20]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="light_resnet50")
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    from compiler import compile
    from tests.test_light_models import dummy_inputs
    import onnxruntime as ort
    path = os.path.join(LIGHT, a.model + ".onnx")
    feeds = dummy_inputs(onnx.load(path))
    cache = tempfile.mkdtemp(prefix="onnxjit-bench-")
    t0 = time.perf_counter()
    fn = compile(path, cache_dir=cache)
    fn.run(feeds)
    cold = time.perf_counter() - t0
    code = ("import sys,time; t=time.perf_counter(); sys.path.insert(0, sys.argv[3]); from compiler import compile; "
            "from tests.test_light_models import dummy_inputs; import onnx; "
            "fn=compile(sys.argv[1], cache_dir=sys.argv[2]); fn.run(dummy_inputs(onnx.load(sys.argv[1]))); "
            "print(time.perf_counter()-t, fn.stats['built'])")
    out = subprocess.run([sys.executable, "-c", code, path, cache, ROOT], capture_output=True, text=True)
    warm, built = out.stdout.split()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ours, theirs = [], []
    for _ in range(a.repeat):           # interleaved, same process
        t = time.perf_counter(); fn.run(feeds); ours.append(time.perf_counter() - t)
        t = time.perf_counter(); sess.run(None, feeds); theirs.append(time.perf_counter() - t)
    mo, mt = np.median(ours), np.median(theirs)
    print(f"{a.model}: cold compile {cold:.1f} s; warm load (new process, built={built}) {float(warm):.2f} s; "
          f"per call: onnxjit {mo * 1e3:.2f} ms, onnxruntime {mt * 1e3:.2f} ms, ratio {mo / mt:.2f} (median of {a.repeat})")


if __name__ == "__main__":
    main()
