"""Where a model's time goes: each statement of its generated graph function, timed.

    python -m bench.profile_ops resnet18_half [--threads 1] [--repeat 50] [--top 25]

MODEL is a name in bench/models (its seeded inputs come from there too).
Builds the model with a plain-Python graph function (ONNXJIT_GRAPH_JIT=0), then
re-executes that function's source with a timer around every statement, and
prints the statements that took the most time (median per call, summed over
lines that call the same kernel). A dev tool: the timer costs ~0.2 us a line."""
import argparse
import ast
import inspect
import os
import sys
import time

import numpy as np


def instrument(graph_fn):
    """A copy of graph_fn that adds each statement's time to _T[i]; its statements' text."""
    src = inspect.getsource(inspect.getmodule(graph_fn))
    tree = ast.parse(src)
    fdef = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "graph")
    fdef.decorator_list = []
    texts, body = [], []
    for stmt in fdef.body:
        if isinstance(stmt, ast.Return):
            body.append(stmt)
            continue
        i = len(texts)
        texts.append(ast.unparse(stmt))
        body += ast.parse("_t0 = _pc()").body + [stmt] + ast.parse(f"_T[{i}] += _pc() - _t0").body
    fdef.body = body
    ns = dict(inspect.getmodule(graph_fn).__dict__)
    ns.update(_pc=time.perf_counter, _T=np.zeros(len(texts)))
    exec(compile(ast.Module(body=[fdef], type_ignores=[]), "<profiled graph>", "exec"), ns)
    return ns["graph"], ns["_T"], texts


def main():
    ap = argparse.ArgumentParser(prog="python -m bench.profile_ops")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    os.environ["ONNXJIT_GRAPH_JIT"] = "0"
    # as the bench's timing processes run (bench/__main__.step): without OMP_NUM_THREADS and the
    # BLAS counts, MKL's OpenMP pool spun beside Numba's and 2 threads timed 2x slower than 1
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from compiler import compile
    from .worker import feeds, model_path
    x = feeds(a.model)
    fn = compile(model_path(a.model), threads=a.threads)
    fn.run(x)
    graph, (names, consts, _, _, arenas) = next(iter(fn._specs.values()))
    pg, T, texts = instrument(graph)
    args = [x[n] for n in names] + list(consts) + (list(arenas.take()) if arenas else [])
    for _ in range(3):
        pg(*args)
    per_call = []
    for _ in range(a.repeat):
        T[:] = 0
        pg(*args)
        per_call.append(T.copy())
    med = np.median(np.array(per_call), axis=0) * 1e3
    total = med.sum()
    t0 = time.perf_counter()
    for _ in range(a.repeat):
        graph(*args)
    plain = (time.perf_counter() - t0) / a.repeat * 1e3
    print(f"{a.model}: {len(texts)} statements, sum of medians {total:.3f} ms (uninstrumented mean {plain:.3f} ms)")
    by_kernel = {}
    for t, s in zip(med, texts):
        head = s.split("(")[0].split("=")[-1].strip()
        by_kernel.setdefault(head, [0.0, 0])
        by_kernel[head][0] += t
        by_kernel[head][1] += 1
    print("\nby callee:")
    for k, (t, n) in sorted(by_kernel.items(), key=lambda kv: -kv[1][0])[:a.top]:
        print(f"  {t:8.3f} ms {100 * t / total:5.1f}%  x{n:<3d} {k}")
    print("\ntop statements:")
    for i in np.argsort(-med)[:a.top]:
        print(f"  {med[i]:8.3f} ms  {texts[i][:200]}")


if __name__ == "__main__":
    sys.exit(main())
