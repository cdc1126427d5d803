"""Memory planning on the bench models: arena bytes against the sum of the
intermediate buffers it replaces, run time planned/unplanned at 1 thread
(interleaved in one process, median of N calls each), and cold compile time
both ways (fresh cache directories).

    PYTHONPATH=. python -m bench.memory_plan [--runs 30] [--cold] [models...]"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

from compiler import compile
from compiler.driver import lower_to_ir
from runtime import threads
from targets import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench", "models")


def sizes(path, feeds) -> dict:
    g = lower_to_ir(onnx.load(path), {k: (a.dtype, a.shape, None) for k, a in feeds.items()})
    t0 = time.perf_counter()
    program = cpu.build(g, {"fusion": True, "threads": 1, "memory_plan": True})
    build_s = time.perf_counter() - t0
    stats = program["memory"]
    return {"arena": stats["arena"], "planned": stats["planned"], "outputs": stats["unplanned"],
            "buffers": sum(b.offset is not None for b in stats["buffers"].values()),
            "build_s": build_s}


def timings(path, feeds, runs: int, cache: str) -> dict:
    fns = {plan: compile(path, cache_dir=cache, threads=1, memory_plan=plan) for plan in (True, False)}
    threads.configure(1)
    times = {True: [], False: []}
    for fn in fns.values():
        fn.run(feeds)
    for _ in range(runs):
        for plan, fn in fns.items():
            t0 = time.perf_counter()
            fn.run(feeds)
            times[plan].append(time.perf_counter() - t0)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {"on_ms": on * 1e3, "off_ms": off * 1e3, "ratio": on / off}


COLD = ("import sys, time, numpy as np; t0 = time.perf_counter(); from compiler import compile; "
        "fn = compile(sys.argv[1], cache_dir=sys.argv[2], threads=1, memory_plan=sys.argv[3] == '1'); "
        "fn.run(dict(np.load(sys.argv[1][:-5] + '.inputs.npz'))); print(time.perf_counter() - t0)")


def cold(path) -> dict:
    """Compile and first call in a new process with an empty cache (Numba compiles every kernel)."""
    out = {}
    for plan in ("0", "1"):
        with tempfile.TemporaryDirectory() as d:
            run = subprocess.run([sys.executable, "-c", COLD, path, d, plan], capture_output=True, text=True,
                                 check=True, env=dict(os.environ, PYTHONPATH=ROOT))
            out[plan] = float(run.stdout.split()[-1])
    return {"cold_off_s": out["0"], "cold_on_s": out["1"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cold", action="store_true", help="also time cold compiles (slow)")
    args = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(HERE, "*.onnx")))
    if args.models:
        paths = [p for p in paths if os.path.basename(p)[:-5] in args.models]
    cache = tempfile.mkdtemp(prefix="onnxjit-memplan-")
    for path in paths:
        feeds = dict(np.load(path[:-5] + ".inputs.npz"))
        row = {"model": os.path.basename(path)[:-5], **sizes(path, feeds)}
        row.update(timings(path, feeds, args.runs, cache))
        if args.cold:
            row.update(cold(path))
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
