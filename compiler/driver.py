"""compile(): model -> runtime.CompiledModel, building each specialisation on demand."""
from __future__ import annotations

import functools
import importlib
import os
import time

from runtime import Cache, CompiledModel, model_key
from runtime import threads as thread_settings

from . import frontend, partition
from .dtypes import UnsupportedDType
from .ops.ml import split_zipmaps, string_label_outputs
from .passes.conv_bn import fold_conv_batchnorm
from .passes.decompose import decompose
from .passes.dynamic import check_data_dependent
from .passes.simplify import eliminate_dead_code, eliminate_identities

TARGETS = {"cpu": "targets.cpu", "cuda": "targets.cuda"}
PIPELINE = (decompose, eliminate_identities, eliminate_dead_code, check_data_dependent)


@functools.lru_cache(maxsize=None)
def source_fingerprint() -> str:
    """A hash of the compiler and target sources: changed code never loads stale cache entries."""
    import glob
    import hashlib
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for pkg in ("compiler", "targets"):
        for path in sorted(glob.glob(os.path.join(root, pkg, "**", "*.py"), recursive=True)):
            with open(path, "rb") as f:
                h.update(path[len(root):].encode() + f.read())
    return h.hexdigest()[:16]


def get_target(name: str):
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known targets: {sorted(TARGETS)}")
    return importlib.import_module(TARGETS[name])


def lower_to_ir(model, feeds: dict, fusion: bool = True):
    graph = frontend.to_ir(model, feeds)
    if fusion:   # folds that change rounding follow the fusion switch
        graph = fold_conv_batchnorm(graph)
    for p in PIPELINE:
        graph = p(graph)
    return graph


def switch(value: bool | None, env: str) -> bool:
    """An on/off option: `value` if given, else environment variable `env` (default on)."""
    if value is not None:
        return bool(value)
    return os.environ.get(env, "1") not in ("0", "off", "false")


def compile(model, target: str = "cpu", *, cache_dir: str | None = None, fusion: bool | None = None,
            eager: bool = True, device_outputs: bool = False, threads: int | None = None,
            memory_plan: bool | None = None):
    """Compile an ONNX model (path, bytes or ModelProto) for `target`.

    Static-shaped models are built (or loaded from the disk cache) right away;
    a model with symbolic dims is specialised on the first call with each new
    set of input shapes. On target "cuda", outputs come back as numpy arrays,
    or as Numba device arrays with `device_outputs=True`. On "cpu", `threads`
    (default: NUMBA_NUM_THREADS) is the Numba thread count the kernels are split
    for; compile() sets it and makes scipy's BLAS single-threaded (runtime/threads.py).
    `memory_plan` (default: ONNXJIT_MEMORY_PLAN, on) lets intermediate buffers share
    one arena allocated once per specialisation (targets/cpu/memplan.py); turn it off
    to bisect a numeric difference."""
    tgt = get_target(target)
    proto, data = frontend.load(model)
    options = {"fusion": switch(fusion, "ONNXJIT_FUSION"),
               "memory_plan": switch(memory_plan, "ONNXJIT_MEMORY_PLAN")}
    if target == "cpu":
        options["threads"] = thread_settings.resolve(threads)
        thread_settings.configure(options["threads"])
    proto = frontend.prepare(proto)
    try:
        proto, map_outputs = split_zipmaps(proto)
    except UnsupportedDType as e:
        raise frontend.UnsupportedModel(str(e)) from None
    bad = frontend.unsupported_nodes(proto)
    if bad:
        raise frontend.UnsupportedModel(f"{len(bad)} unsupported node(s):\n  " + "\n  ".join(bad))
    if partition.needs_plan(proto):
        if map_outputs:
            raise frontend.UnsupportedModel("ZipMap in a model with control flow or sequences is not supported")
        return partition.plan_model(proto, lambda segment: compile(
            segment, target, cache_dir=cache_dir, fusion=fusion, eager=False, memory_plan=memory_plan))
    specs, outputs = frontend.signature(proto)
    value_inputs = frontend.value_specialised_inputs(proto)
    try:
        string_outputs = string_label_outputs(proto)
    except UnsupportedDType as e:
        raise frontend.UnsupportedModel(str(e)) from None

    def builder(meta):
        graph = lower_to_ir(proto, meta, options["fusion"])
        program = tgt.build(graph, options)
        program["args"] = [v.name for v in graph.inputs]
        return program

    inputs = [{"name": s.name, "dtype": s.dtype, "shape": s.shape, "optional": s.optional} for s in specs]
    key = model_key(data, target, dict(options, compiler=source_fingerprint(),
                                       graph_jit=os.environ.get("ONNXJIT_GRAPH_JIT", "auto")))
    fn = CompiledModel(inputs, outputs, value_inputs, key,
                       Cache(cache_dir), builder, string_outputs, device_outputs=device_outputs,
                       map_outputs=map_outputs)
    if eager and not value_inputs and all(s.optional or (s.shape is not None and all(isinstance(d, int) and d > 0 for d in s.shape))
                                          for s in specs):
        import numpy as np
        feeds = {s.name: np.zeros(s.shape, s.dtype) for s in specs if not s.optional}
        t0 = time.perf_counter()
        fn.specialisation(feeds)
        fn.stats["specialise_s"] = time.perf_counter() - t0
    return fn
