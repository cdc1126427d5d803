"""ONNX node conformance cases on our compiler.

    python -m tests.conformance            # run every case, print the count
    python -m tests.conformance --write    # ... and rewrite the committed pass list

Cases come from the installed onnx (`collect_testcases`); each is compiled
with onnxjit and compared with the shipped expected outputs (rtol 1e-3,
atol 1e-7, same dtype and shape). Crashing cases are isolated: workers run
chunks in subprocesses and resume after the case that brought them down."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RTOL, ATOL = 1e-3, 1e-7


def cases() -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        return {c.name: c for c in collect_testcases()}


def list_path(target: str, kind: str = "pass") -> str:
    """tests/conformance_pass_cpu.txt, ..._pass_cpu_symbolic.txt, ..._seconds_cuda.json"""
    name = target.replace(":", "_")
    return os.path.join(HERE, f"conformance_pass_{name}.txt" if kind == "pass" else f"conformance_seconds_{name}.json")


def pass_list(target: str) -> list[str]:
    with open(list_path(target)) as f:
        return [line.strip() for line in f if line.strip()]


def _array(x):
    """Some cases (Cast) ship their data as TensorProtos: read them as onnx's backend runner does."""
    from onnx import TensorProto, numpy_helper
    return numpy_helper.to_array(x) if isinstance(x, TensorProto) else x


def compare(name, got, want):
    """Tensors by value; sequences (lists) element by element; an empty optional is None."""
    want = _array(want)
    if want is None or got is None or isinstance(want, list):
        if got is want:
            return
        if want is None or not isinstance(got, list) or not isinstance(want, list) or len(got) != len(want):
            raise AssertionError(f"output {name}: got {_describe(got)}, expected {_describe(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            compare(f"{name}[{i}]", g, w)
    elif isinstance(want, np.ndarray) or np.isscalar(want):
        want = np.asarray(want)
        got = np.asarray(got)
        if got.dtype != want.dtype:
            raise AssertionError(f"output {name}: dtype {got.dtype}, expected {want.dtype}")
        if got.shape != want.shape:
            raise AssertionError(f"output {name}: shape {got.shape}, expected {want.shape}")
        if want.dtype.kind == "V":   # ml_dtypes floats, as float32; bfloat16 to two ulps as onnx's runner
            rtol = max(RTOL, 2 ** -6) if want.dtype.name == "bfloat16" else RTOL
            np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=rtol,
                                       atol=ATOL, equal_nan=True, err_msg=name)
        elif want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        raise AssertionError(f"output {name}: non-tensor outputs are not supported")


def _describe(x) -> str:
    return "None" if x is None else f"a sequence of {len(x)}" if isinstance(x, list) else f"a {type(x).__name__}"


def pass_list_tests(target: str, minimum: int, run=None):
    """The two pytest tests over a committed pass list: its size, and each case
    in `run` (default: all of it) still passing on `target`."""
    import pytest
    listed = pass_list(target)

    def test_pass_list_size(all_cases):
        known = [n for n in listed if n in all_cases]
        print(f"\n{len(known)} of {len(all_cases)} node cases are in the {target} pass list")
        assert len(known) >= minimum

    @pytest.mark.parametrize("name", listed if run is None else run)
    def test_node_case(name, all_cases):
        if name not in all_cases:
            pytest.skip("case not in this onnx version")
        run_case(all_cases[name], target=target)

    return test_pass_list_size, test_node_case


def symbolic(model):
    """The model with every graph input dim (a sequence's or optional's elements'
    too) made symbolic (dim_param), the output dims unknown and value_info
    dropped, as onnx-mlir runs the cases."""
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for i, v in enumerate(m.graph.input):
        tp = v.type
        while tp.WhichOneof("value") in ("sequence_type", "optional_type"):   # a sequence's elements
            tp = getattr(tp, tp.WhichOneof("value")).elem_type
        if v.name in inits or not tp.HasField("tensor_type"):
            continue
        for j, d in enumerate(tp.tensor_type.shape.dim):
            d.Clear()
            d.dim_param = f"d{i}_{j}"
    for v in m.graph.output:     # the checker wants a shape: keep the rank, forget the dims
        if v.type.HasField("tensor_type"):
            for d in v.type.tensor_type.shape.dim:
                d.Clear()
    del m.graph.value_info[:]
    return m


def run_case(case, target="cpu"):
    """Compile and run one case; raises on any failure or mismatch. A target
    "cpu:symbolic" runs the symbolic-dims variant of the case on cpu."""
    from compiler import compile
    target, _, mode = target.partition(":")
    fn = compile(symbolic(case.model) if mode == "symbolic" else case.model, target=target)
    names = [i.name for i in case.model.graph.input]
    outs = [o.name for o in case.model.graph.output]
    for inputs, expected in case.data_sets:
        feeds = dict(zip(names, map(_array, inputs)))
        got = fn.run(feeds)
        for o, want in zip(outs, expected):
            compare(o, got[o], want)


def _worker(names_file, out_file, target):
    all_cases = cases()
    with open(names_file) as f:
        names = [n.strip() for n in f if n.strip()]
    with open(out_file, "a") as out:
        for n in names:
            out.write(json.dumps({"name": n, "start": True}) + "\n")
            out.flush()
            t0 = time.perf_counter()
            try:
                run_case(all_cases[n], target)
                res = {"name": n, "ok": True}
            except Exception as e:   # noqa: BLE001 -- a failing case is data here
                msg = "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()
                res = {"name": n, "ok": False, "error": (msg[0] if msg else type(e).__name__)[:300]}
            res["s"] = round(time.perf_counter() - t0, 3)
            out.write(json.dumps(res) + "\n")
            out.flush()


def worker_env(target) -> dict:
    """CUDA cases run on Numba's simulator unless ONNXJIT_TEST_GPU=1 asks for the real GPU."""
    env = dict(os.environ)
    if target.startswith("cuda") and os.environ.get("ONNXJIT_TEST_GPU") != "1":
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return env


def run_all(names, target="cpu", jobs=2) -> dict:
    """name -> result dict, running chunks in subprocesses that survive crashes."""
    work = tempfile.mkdtemp(prefix="onnxjit-conf-")
    chunks = [names[i::jobs] for i in range(jobs)]
    results: dict = {}
    pending = {i: list(c) for i, c in enumerate(chunks) if c}
    while pending:
        procs = {}
        for i, todo in pending.items():
            nf, of = os.path.join(work, f"names{i}.txt"), os.path.join(work, f"out{i}.jsonl")
            with open(nf, "w") as f:
                f.write("\n".join(todo))
            open(of, "w").close()
            procs[i] = (subprocess.Popen([sys.executable, "-m", "tests.conformance", "--worker", nf, of, target],
                                         cwd=os.path.dirname(HERE), env=worker_env(target)), of)
        nxt = {}
        for i, (p, of) in procs.items():
            p.wait()
            started = None
            for line in open(of):
                r = json.loads(line)
                if r.get("start"):
                    started = r["name"]
                else:
                    results[r["name"]] = r
                    started = None
            if started is not None:
                results[started] = {"name": started, "ok": False, "error": f"crashed (exit {p.returncode})"}
            rest = [n for n in pending[i] if n not in results]
            if rest:
                nxt[i] = rest
        pending = nxt
    return results


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help="rewrite the committed pass list")
    ap.add_argument("--update", action="store_true",
                    help="update the committed pass list with the cases run (with --only)")
    ap.add_argument("--target", default="cpu", help='cpu, cuda, or "cpu:symbolic" (every input dim symbolic)')
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="substring filter on case names")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return _worker(*a.worker)
    names = sorted(n for n in cases() if a.only in n)
    t0 = time.time()
    res = run_all(names, a.target, a.jobs)
    ok = sorted(n for n, r in res.items() if r["ok"])
    fails = {}
    for r in res.values():
        if not r["ok"]:
            fails.setdefault(r["error"][:120], []).append(r["name"])
    for err, ns in sorted(fails.items(), key=lambda kv: -len(kv[1]))[:60]:
        print(f"{len(ns):4d}  {err}   e.g. {ns[0]}")
    print(f"{len(ok)} of {len(names)} node cases pass on {a.target} ({time.time() - t0:.0f} s)")
    if a.write:
        write_lists(a.target, ok, {n: res[n]["s"] for n in ok})
    elif a.update:
        old = set(pass_list(a.target))
        with open(list_path(a.target, "seconds")) as f:
            seconds = json.load(f)
        seconds.update({n: res[n]["s"] for n in ok})
        keep = sorted((old - set(names)) | set(ok))
        print(f"pass list: {len(old)} -> {len(keep)}")
        write_lists(a.target, keep, {n: seconds.get(n, 0.0) for n in keep})


def write_lists(target, ok, seconds):
    """The pass list, and each passing case's time (the CUDA simulator's CI subset uses it)."""
    with open(list_path(target), "w") as f:
        f.write("\n".join(ok) + "\n")
    with open(list_path(target, "seconds"), "w") as f:
        json.dump(seconds, f, indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
