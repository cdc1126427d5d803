"""`onnxjit run [MODEL.onnx]`: compile, run on seeded random inputs, and report
outputs, cold compile, warm load and per-call latency."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_MODEL = os.path.join(os.path.dirname(__file__), "models", "small_cnn.onnx")


def random_feeds(fn, seed=0, dims=None):
    """Seeded inputs for each required input; symbolic dims take `dims` or 1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in fn.inputs:
        if spec["optional"]:
            continue
        shape = tuple(d if isinstance(d, int) and d > 0 else (dims or {}).get(d, 1) for d in (spec["shape"] or ()))
        dt = np.dtype(spec["dtype"])
        if dt.kind == "f":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dt)
        elif dt.kind == "b":
            feeds[spec["name"]] = rng.integers(0, 2, shape).astype(dt)
        else:
            feeds[spec["name"]] = rng.integers(0, 10, shape).astype(dt)
    return feeds


def _time_calls(fn, feeds, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn.run(feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _warm_load_seconds(model, target, cache_dir) -> float:
    """Load from the disk cache in a fresh process (what a second run of a service sees)."""
    code = ("import time,sys; t=time.perf_counter(); from compiler import compile; "
            "from compiler.cli import random_feeds; fn=compile(sys.argv[1], target=sys.argv[2], cache_dir=sys.argv[3]); "
            "fn.run(random_feeds(fn)); print(time.perf_counter()-t, fn.stats['built'])")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # cwd the cache dir: `python -c` puts the cwd first on sys.path, and run from a source tree other
    # than the installed one the child imported that tree's compiler (another cache key) and compiled
    out = subprocess.run([sys.executable, "-c", code, os.path.abspath(model), target, cache_dir], capture_output=True,
                         text=True, env=env, cwd=cache_dir)
    if out.returncode:
        raise RuntimeError(out.stderr)
    seconds, built = out.stdout.split()
    if int(built):
        raise RuntimeError("the warm process compiled instead of loading from the cache")
    return float(seconds)


def cmd_run(args):
    from compiler import compile
    model = args.model or DEFAULT_MODEL
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="onnxjit-run-")
    t0 = time.perf_counter()
    fn = compile(model, target=args.target, cache_dir=cache_dir)
    feeds = random_feeds(fn, args.seed)
    outs = fn.run(feeds)
    cold = time.perf_counter() - t0
    print(f"model: {model}")
    for name, a in feeds.items():
        print(f"  input  {name}: {a.dtype}{list(a.shape)}")
    for name, a in outs.items():
        a = np.asarray(a)
        desc = f"mean {a.mean():.6g}, min {a.min():.6g}, max {a.max():.6g}" if a.size and a.dtype.kind in "fiu" else ""
        print(f"  output {name}: {a.dtype}{list(a.shape)} {desc}")
    warm = _warm_load_seconds(model, args.target, cache_dir)
    per_call = _time_calls(fn, feeds, args.repeat)
    print(f"cold compile (first call included): {cold:.3f} s")
    print(f"warm load from disk cache, new process (first call included): {warm:.3f} s")
    print(f"per-call latency (median of {args.repeat}): {per_call * 1e3:.3f} ms")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="onnxjit", description="JIT-compile ONNX models to native code")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="compile and run a model (the bundled one by default)")
    r.add_argument("model", nargs="?", help="an .onnx file; default: a small CNN shipped with onnxjit")
    r.add_argument("--target", default="cpu")
    r.add_argument("--cache-dir", help="default: a fresh temporary folder, so the compile is cold")
    r.add_argument("--repeat", type=int, default=50)
    r.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        cmd_run(args)


if __name__ == "__main__":
    main()
