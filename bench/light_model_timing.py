"""Cold compile, warm load (new process) and per-call latency next to onnxruntime,
interleaved in one process as python -m bench does (bench.worker.interleave), for a
light model from the onnx wheel.

    python bench/light_model_timing.py light_resnet50 [--repeat 20]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

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
    from bench.worker import interleave
    path = os.path.join(LIGHT, a.model + ".onnx")
    feeds = dummy_inputs(onnx.load(path))
    cache = tempfile.mkdtemp(prefix="onnxjit-bench-")
    t0 = time.perf_counter()
    fn = compile(path, cache_dir=cache)
    fn.run(feeds)
    cold = time.perf_counter() - t0
    code = ("import sys,time; t=time.perf_counter(); sys.path.insert(0, sys.argv[3]); from compiler import compile; "
            "from tests.test_light_models import dummy_inputs; import onnx; x=dummy_inputs(onnx.load(sys.argv[1])); "
            "t1=time.perf_counter(); fn=compile(sys.argv[1], cache_dir=sys.argv[2]); fn.run(x); t2=time.perf_counter(); "
            "print(t2-t, t2-t1, fn.stats['built'])")
    out = subprocess.run([sys.executable, "-c", code, path, cache, ROOT], capture_output=True, text=True)
    warm_all, warm, built = out.stdout.split()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    mo, mt, _, n = interleave(lambda: fn.run(feeds), lambda: sess.run(None, feeds), a.repeat)
    print(f"{a.model}: cold compile {cold:.1f} s; warm load (new process, built={built}) {float(warm):.2f} s "
          f"({float(warm_all):.2f} s with imports); per call: onnxjit {mo:.2f} ms, onnxruntime {mt:.2f} ms, "
          f"ratio {mo / mt:.2f} (median of {n}, bench.worker.interleave)")


if __name__ == "__main__":
    main()
