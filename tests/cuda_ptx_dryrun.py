"""Compile every kernel a CUDA program launches to PTX, without a GPU.

    python -m tests.cuda_ptx_dryrun OUT_DIR CASE [CASE ...]

Runs in a process without the simulator. Each named ONNX node case is
compiled for target "cuda"; its host graph function then runs with numpy
arrays standing in for device arrays, and every kernel launch is replaced by
numba.cuda.compile_ptx for the launch's argument types, for sm_80 and sm_90.
That covers the generated kernels and the library kernels they reach, with
the argument types a real run would give them. Prints one JSON line:
{"ptx": [files], "failed": [messages], "kernels": n}."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np

CCS = ((8, 0), (9, 0))


class _HostArray(np.ndarray):
    """A numpy array standing in for a device array."""

    def copy_to_device(self, other):
        self[...] = other

    def copy_to_host(self):
        return np.asarray(self)


def _patch_cuda(launches: list):
    """Device arrays become numpy arrays; launches are recorded, not run."""
    import numba
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    class _Device:      # device functions ask the current device for its cc; there is no GPU
        compute_capability = CCS[0]

    if not cuda.is_available():
        dispatcher.get_current_device = lambda: _Device()
    cuda.device_array = lambda shape, dtype=np.float64, **kw: np.zeros(shape, dtype).view(_HostArray)
    cuda.to_device = lambda a, **kw: np.array(a).view(_HostArray)

    class _Launch:
        def __init__(self, kernel):
            self.kernel = kernel

        def __call__(self, *args):
            launches.append((self.kernel, tuple(numba.typeof(a) for a in args)))

    dispatcher.CUDADispatcher.__getitem__ = lambda self, config: _Launch(self)
    return _Device


def _import_program(program: dict, work: str):
    sys.path.insert(0, work)
    for name, text in list(program["libs"].items()) + [("onnxjit_dryrun_graph", program["source"])]:
        with open(os.path.join(work, name + ".py"), "w") as f:
            f.write(text)
    spec = importlib.util.spec_from_file_location("onnxjit_dryrun_graph", os.path.join(work, "onnxjit_dryrun_graph.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.graph


def main(out_dir: str, names: list[str]):
    from numba import cuda

    from compiler import driver
    from targets import cuda as cuda_target
    from tests.conformance import cases

    launches: list = []
    device = _patch_cuda(launches)
    all_cases = cases()
    for i, name in enumerate(names):
        case = all_cases[name]
        inputs = case.data_sets[0][0]
        proto = driver.frontend.prepare(case.model)
        by_value = driver.frontend.value_specialised_inputs(proto)
        feeds = {v.name: (a.dtype, a.shape, a if v.name in by_value else None)
                 for v, a in zip(case.model.graph.input, inputs)}
        ir = driver.lower_to_ir(proto, feeds)
        args = [dict(zip([v.name for v in case.model.graph.input], inputs))[v.name] for v in ir.inputs]
        program = cuda_target.build(ir, {"fusion": True})
        work = os.path.join(out_dir, f"case{i}")
        os.makedirs(work)
        graph = _import_program(program, work)
        graph(*[np.ascontiguousarray(a) for a in args], *program["consts"])
    seen, files, failed = set(), [], []
    for kernel, sig in launches:
        key = (kernel.py_func.__code__.co_filename, kernel.py_func.__name__, sig)
        if key in seen:
            continue
        seen.add(key)
        for cc in CCS:
            device.compute_capability = cc
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
            except Exception as e:  # noqa: BLE001 -- reported, the test fails on it
                failed.append(f"{kernel.py_func.__name__}{sig} sm_{cc[0]}{cc[1]}: {type(e).__name__}: {str(e)[:1500]}")
                continue
            path = os.path.join(out_dir, f"k{len(files)}.sm{cc[0]}{cc[1]}.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            files.append(path)
    print(json.dumps({"ptx": files, "failed": failed, "kernels": len(seen)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
