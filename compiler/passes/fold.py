"""Constant folding: nodes whose inputs are all known run on the host, but only
for ops that register a `fold` (shape arithmetic and data movement); tensor
math on constants stays in compiled kernels."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..registry import lookup

ALWAYS_FOLDABLE = {"Shape", "Size", "EyeLike"}   # need only the (concrete) input shape


def fold_node(node: Node) -> bool:
    """Fill the outputs' `const` when the node can be folded; True if it was."""
    opdef = lookup(node.op, node.domain)
    if opdef is None or opdef.fold is None:
        return False
    present = [v for v in node.inputs if v is not None]
    if node.op not in ALWAYS_FOLDABLE and not all(v.is_const for v in present):
        return False
    arrays = [v.const for v in present]
    results = opdef.fold(node, arrays)
    if results is None:
        return False
    for v, r in zip(node.outputs, results):
        r = np.asarray(r)
        if r.shape != v.shape or r.dtype != v.dtype:
            raise AssertionError(f"fold of {node.op} gave {r.dtype}{r.shape}, expected {v.dtype}{v.shape}")
        v.const = r
    return True


def fold_constants(graph: Graph) -> Graph:
    """The pass form: drop every node that folds."""
    return Graph(graph.inputs, graph.outputs, [n for n in graph.nodes if not fold_node(n)])
