"""onnxjit against onnxruntime on the models in bench/models (make them with
`python -m bench.make_models`).

    python -m bench [--models resnet18_half,mlp] [--threads 1,2] [--repeat 50] [--out bench/results]

Per model: a cold compile in a fresh process with an empty cache dir (and the
outputs checked against onnxruntime), a warm load from that cache in another
new process, then for each thread count a process of its own (BLAS and Numba
pools are sized when they load) that times the two interleaved in blocks: per
round, a --gap pause, one untimed call then --block timed calls of each engine. A model
onnxjit cannot compile is reported, not fatal.
Writes <out>/<date>-<host>[-<tag>].json and .md."""
import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np

from .worker import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available():
    return sorted(f[:-5] for f in os.listdir(MODELS) if f.endswith(".onnx"))


def step(args, threads=None, blas_threads=None, timeout=1800):
    """Run one worker step; returns its JSON, or {"error": ...} on any failure."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if threads:
        env.update({v: str(threads) for v in THREAD_VARS})
        env.update({v: str(blas_threads or threads) for v in BLAS_VARS})
    try:
        p = subprocess.run([sys.executable, "-m", "bench.worker", *map(str, args)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if p.returncode == 0:
        return json.loads(p.stdout.strip().splitlines()[-1])
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    return {"error": first_error(lines)}


def first_error(lines):
    """The exception line of a traceback, plus the message lines after it."""
    for i, ln in enumerate(lines):
        if not ln.startswith(" ") and ("Error" in ln or "Exception" in ln or "Unsupported" in ln) and ":" in ln:
            return " ".join(x.strip() for x in lines[i:i + 4])[:300]
    return (lines[-1] if lines else "worker failed")[:300]


def bench_model(name, threads, blas, repeat, budget, block, gap):
    cache = tempfile.mkdtemp(prefix="onnxjit-bench-")
    try:
        print(f"{name}: cold compile ...", flush=True)
        row = {"model": name, "cold": step(["cold", name, cache])}
        if "error" in row["cold"]:
            return dict(row, unsupported=row["cold"]["error"])
        row["warm"] = step(["warm", name, cache])
        row["timings"] = []
        for t in threads:
            b = blas or t
            r = step(["time", name, cache, t, b, repeat, budget, block, gap], threads=t, blas_threads=b)
            print(f"  {t} thread(s): {r}", flush=True)
            row["timings"].append(dict(r, threads=t))
        return row
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def geomean(xs):
    return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")


def environment():
    import numba
    import onnxruntime
    from runtime.cache import environment_key
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    # The CPU the kernels are built for, as the cache keys them (NUMBA_CPU_NAME / _FEATURES, else
    # the host): they differ with it (AVX-512 or AVX2 micro-kernels, vector widths), and a VM of
    # this project has been a Zen 3 one session, a Zen 4 the next: results compare only on one CPU.
    target = environment_key()
    return {"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
            "llvm_cpu": target["cpu"], "avx512": "+avx512f" in target["features"].split(","),
            "cores": os.cpu_count(), "python": platform.python_version(), "numba": numba.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "commit": commit.strip(),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(result):
    """One row per model and thread count, then the geometric mean of the ratio per thread count."""
    env = result["env"]
    out = [f"# onnxjit vs onnxruntime, {result['date']} on {env['host']}",
           "", f"{env['cores']} cores ({env.get('llvm_cpu', '?')}, {'AVX-512' if env.get('avx512') else 'no AVX-512'}), load {fmt(env['load'], '.1f')} at start; numba {env['numba']}, "
           f"onnxruntime {env['onnxruntime']}, commit {env['commit']}; BLAS threads {result['blas_threads']}; median of up to {result['repeat']} timed calls, "
           f"interleaved in blocks of {result.get('block', 1)} after a {result.get('gap_s', 0) * 1e3:.0f} ms pause and one untimed call per engine and block. Cold compile: compile() + first call, empty cache, new process; warm load: the same from the "
           "disk cache in another new process, its imports (`from compiler import compile`) timed apart: Numba's typing registries load at "
           "whichever comes first, so the two add up to what a new process pays. Ratio < 1: onnxjit is faster.",
           "", "| model | threads | onnxjit ms | ort ms | ratio | cold compile s | warm load s | + imports s | max abs err | max rel err | check |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["models"]:
        if "unsupported" in row:
            out.append(f"| {row['model']} | - | unsupported: {row['unsupported'].replace('|', '/')} | | | | | | | | |")
            continue
        c, w = row["cold"], row["warm"]
        check = "pass" if c["pass"] else "FAIL"
        for t in row["timings"]:
            if "error" in t:
                out.append(f"| {row['model']} | {t['threads']} | error: {t['error'].replace('|', '/')} | | | | | | | | |")
                continue
            out.append(f"| {row['model']} | {t['threads']} | {t['onnxjit_ms']:.3f} | {t['ort_ms']:.3f} | "
                       f"{t['ratio']:.2f} | {c['load_s']:.1f} | {fmt(w.get('load_s'), '.2f')} | {fmt(w.get('import_s'), '.2f')} | "
                       f"{c['max_abs']:.2e} | {c['max_rel']:.2e} | {check} |")
    out.append("")
    for t, g in result["geomean"].items():
        out.append(f"Geometric mean of ratio at {t} thread(s): **{g:.2f}** (over {result['geomean_n'][t]} models)  ")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(available()), help="comma-separated names in bench/models")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="BLAS threads for onnxjit (default: the thread count; onnxruntime has its own GEMM)")
    ap.add_argument("--repeat", type=int, default=50, help="timed calls per engine, model and thread count")
    ap.add_argument("--block", type=int, default=3,
                    help="timed calls per engine in a row, after one untimed call (1: the old one-for-one alternation, still with the untimed call)")
    ap.add_argument("--gap", type=float, default=0.05,
                    help="seconds each engine waits before its block (the other's spinning threads go idle)")
    ap.add_argument("--budget", type=float, default=60.0, help="stop a timing loop after this many seconds (>= 5 rounds)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--tag", default="", help="suffix of the result file names (a variant run on the same day)")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "repeat": a.repeat, "block": a.block,
              "gap_s": a.gap,
              "blas_threads": a.blas_threads or "same as threads",
              "env": environment(), "models": []}
    for name in a.models.split(","):
        result["models"].append(bench_model(name, threads, a.blas_threads, a.repeat, a.budget, a.block, a.gap))
    ratios = {t: [x["ratio"] for r in result["models"] for x in r.get("timings", [])
                  if x["threads"] == t and "ratio" in x] for t in threads}
    result["geomean"] = {str(t): geomean(v) for t, v in ratios.items()}
    result["geomean_n"] = {str(t): len(v) for t, v in ratios.items()}
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, f"{result['date'][:10]}-{result['env']['host']}" + (f"-{a.tag}" if a.tag else ""))
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    text = markdown(result)
    with open(base + ".md", "w") as f:
        f.write(text)
    print(text)
    print("wrote", base + ".json", base + ".md")


if __name__ == "__main__":
    main()
