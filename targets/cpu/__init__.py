"""The CPU target: IR -> one Python module of Numba code (a graph function
calling fused kernels and hand-written kernel libraries)."""
from __future__ import annotations

from compiler.passes.conv_epilogue import fuse_conv_epilogues
from compiler.passes.fuse import fuse_elementwise

from compiler.dtypes import is_held

from . import (half, lower, lower_attention, lower_dynamic, lower_einsum, lower_index, lower_ml,  # noqa: F401 (lowerings register on import)
               lower_nn, lower_quant, lower_rnn, lower_signal, lower_text, lower_training, scalar)
from . import lower_vision  # noqa: F401, E402 (after lower_nn: it wraps the MaxPool lowering)
from . import memplan
from .conv_input_scale import fold_input_scales
from .emitter import Emitter

NAME = "cpu"


class LoweringError(Exception):
    pass


def build(graph, options: dict) -> dict:
    """Returns {"source", "libs", "consts"}: all the runtime needs to load the graph."""
    if options.get("fusion", True):
        graph = fold_input_scales(fuse_conv_epilogues(graph))
    em = Emitter()
    em.threads = options.get("threads", 1)   # kernels split large work into this many parts
    return build_program(graph, options, lower.LOWER, em, scalar.supports, NAME)


def build_program(graph, options: dict, lowerings: dict, em, supports, target: str) -> dict:
    """Fuse, lower every node with `lowerings` into emitter `em`, and return the program."""
    graph = fuse_elementwise(graph, supports, enabled=options.get("fusion", True))
    for i, v in enumerate(graph.inputs):
        em.bind_input(v, i)
    for node in graph.nodes:
        fn = lower.lowering_of(node, lowerings)
        if fn is None:
            raise LoweringError(f"node {node.name!r} ({node.op}): no {target} lowering")
        try:
            half.lower(node, em, fn)
        except NotImplementedError as e:
            raise LoweringError(f"node {node.name!r} ({node.op}): {e}") from None
    outs, seen = [], set()
    for v in graph.outputs:
        name = em[v]
        if v in em.aliases or v in seen:
            name = em.copy_expr(name)     # never hand out a view of an input or constant
        seen.add(v)
        outs.append(name)
    stats = None
    if options.get("memory_plan", True) and em.MEMORY_PLAN:
        em.lines, em.arena, stats = memplan.plan(em.lines, outs)
    try:
        text, libs = em.module(len(graph.inputs), outs)
    except NotImplementedError as e:
        raise LoweringError(str(e)) from None
    views = [v.dtype.name if is_held(v.dtype) else None for v in graph.outputs]   # outputs held as bits
    return {"source": text, "libs": libs, "consts": em.consts, "views": views, "fused_graph": graph,
            "arena": em.arena, "memory": stats}
