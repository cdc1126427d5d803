"""Dead-code and identity elimination."""
from __future__ import annotations

from ..ir import Graph

IDENTITY_OPS = {"Identity", "Dropout"}   # Dropout is the identity at inference


def eliminate_dead_code(graph: Graph) -> Graph:
    live = {v for v in graph.outputs}
    kept = []
    for n in reversed(graph.nodes):
        if any(v in live for v in n.outputs):
            kept.append(n)
            live.update(v for v in n.inputs if v is not None)
    return Graph(graph.inputs, graph.outputs, kept[::-1])


def eliminate_identities(graph: Graph) -> Graph:
    """Forward the input of Identity (and inference Dropout's data output) to its users."""
    alias = {}
    kept = []
    for n in graph.nodes:
        n.inputs = [alias.get(v, v) if v is not None else None for v in n.inputs]
        if n.op in IDENTITY_OPS and len([o for o in n.outputs]) >= 1 and not _needs_mask(n):
            alias[n.outputs[0]] = n.inputs[0]
            continue
        kept.append(n)
    outputs = [alias.get(v, v) for v in graph.outputs]
    return Graph(graph.inputs, outputs, kept)


def _needs_mask(n) -> bool:
    """Dropout stays a node (and is checked at lowering) unless it is plainly inference."""
    if n.op != "Dropout":
        return False
    training = n.input(2)
    return len(n.outputs) > 1 or (training is not None and (training.const is None or bool(training.const)))
