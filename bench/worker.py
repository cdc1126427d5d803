"""One benchmark step in its own process, so that each one starts cold and each
thread count gets BLAS and Numba pools sized before they load.

    python -m bench.worker cold|warm|time MODEL CACHE_DIR [THREADS BLAS_THREADS REPEAT BUDGET_S [BLOCK [GAP_S]]]

Prints one JSON object on its last stdout line; the parent (bench/__main__.py)
sets the thread environment variables before starting it."""
import json
import os
import sys
import time

import numpy as np

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
RTOL, ATOL = 1e-3, 1e-4
BLOCK = 3   # timed calls per engine per round (see timed)
GAP = 0.05  # seconds each engine waits before its block, for the other's threads to go idle


def model_path(name):
    return os.path.join(MODELS, name + ".onnx")


def feeds(name):
    with np.load(os.path.join(MODELS, name + ".inputs.npz")) as z:
        return {k: z[k] for k in z.files}


def ort_session(name, threads=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model_path(name), so, providers=["CPUExecutionProvider"])


def load(name, cache_dir):
    """compile() and the first call, timed after imports (imports are timed apart)."""
    t0 = time.perf_counter()
    from compiler import compile
    t1 = time.perf_counter()
    x = feeds(name)
    fn = compile(model_path(name), cache_dir=cache_dir)
    outs = fn.run(x)
    return fn, x, outs, {"import_s": t1 - t0, "load_s": time.perf_counter() - t1, "built": fn.stats.get("built")}


def errors(ours, theirs):
    """Max abs and rel error over all outputs, and allclose at RTOL/ATOL."""
    out = {"max_abs": 0.0, "max_rel": 0.0, "pass": True}
    for name, ref in theirs.items():
        got = np.asarray(ours[name])
        if got.shape != ref.shape:
            return dict(out, max_abs=float("inf"), max_rel=float("inf"), error=f"{name}: shape {got.shape} != {ref.shape}")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        out["max_abs"] = max(out["max_abs"], float(diff.max(initial=0)))
        out["max_rel"] = max(out["max_rel"], float((diff / np.maximum(np.abs(ref), ATOL)).max(initial=0)))
        out["pass"] &= bool(np.allclose(got, ref, rtol=RTOL, atol=ATOL))
    return out


def cold(name, cache_dir):
    fn, x, outs, t = load(name, cache_dir)
    sess = ort_session(name)
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, x)))
    return dict(t, **errors(outs, ref))


def warm(name, cache_dir):
    return load(name, cache_dir)[3]


def timed(name, cache_dir, threads, blas_threads, repeat, budget, block=BLOCK, gap=GAP):
    """Interleaved in blocks: per round, each engine waits `gap` seconds, makes one
    untimed call and then `block` timed ones, the engine going first alternating. The
    gap and the untimed call absorb the switch: both engines' idle worker threads spin
    for a while after a call returns. onnxruntime's spin for tens of milliseconds, and
    on 2 cores they took the core our second thread needed: bert_small at 2 threads ran
    10.8 ms right after onnxruntime's calls, 7.8 ms 10 ms later, 4.1 ms 50 ms later, as
    alone (4.0 ms, and with onnxruntime's spinning turned off). Our own spin for about
    0.1 ms (runtime/threads.py). Without the untimed call, the first call after a
    switch ran 2x slower for onnxjit and 1.5x slower for onnxruntime."""
    import numba
    import runtime  # noqa: F401 (its OpenMP spin setting, before Numba's pool starts)
    numba.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(blas_threads)
    except ImportError:
        pass                                  # OPENBLAS_NUM_THREADS from the parent still holds
    fn, x, _, t = load(name, cache_dir)
    sess = ort_session(name, threads)
    ours, theirs, rounds, calls = interleave(lambda: fn.run(x), lambda: sess.run(None, x), repeat, budget, block, gap)
    return {"threads": threads, "numba_threads": numba.get_num_threads(), "blas_threads": blas_threads,
            "rounds": rounds, "block": block, "gap_s": gap, "calls": calls,
            "onnxjit_ms": ours, "ort_ms": theirs, "ratio": ours / theirs, "built": t["built"]}


def interleave(ours, theirs, repeat, budget=60.0, block=BLOCK, gap=GAP):
    """Median ms of each engine's call (see timed), the rounds run and the calls timed each."""
    calls = [ours, theirs]
    for _ in range(3):                        # warm-up: first-call allocations, ORT's arena
        calls[0](), calls[1]()
    times, start = ([], []), time.perf_counter()
    for r in range(-(-repeat // block)):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            time.sleep(gap)
            calls[i]()
            for _ in range(block):
                t0 = time.perf_counter()
                calls[i]()
                times[i].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget and r >= 4:
            break
    return float(np.median(times[0])) * 1e3, float(np.median(times[1])) * 1e3, r + 1, len(times[0])


def main(argv):
    mode, name, cache_dir, *rest = argv
    if mode == "time":
        result = timed(name, cache_dir, int(rest[0]), int(rest[1]), int(rest[2]), float(rest[3]),
                       *map(int, rest[4:5]), *map(float, rest[5:6]))
    else:
        result = {"cold": cold, "warm": warm}[mode](name, cache_dir)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
