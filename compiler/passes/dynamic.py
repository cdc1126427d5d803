"""Check that data-dependent shapes (registry.DATA_DEPENDENT_SHAPE) stay at the graph's end.

Their IR shape is an upper bound, so a node reading such a value would be
compiled for the wrong shape: until the graph is cut after these ops, their
varying outputs may only be graph outputs."""
from __future__ import annotations

from ..frontend import CompileError
from ..ir import Graph
from ..ops.dynamic import dynamic_outputs
from ..registry import DATA_DEPENDENT_SHAPE


class DataDependentShape(CompileError):
    pass


def check_data_dependent(graph: Graph) -> Graph:
    users = graph.consumers()
    for n in graph.nodes:
        if n.op not in DATA_DEPENDENT_SHAPE:
            continue
        for i, v in enumerate(n.outputs):
            if v in dynamic_outputs(n) and v in users:
                raise DataDependentShape(
                    f"node {n.name!r} ({n.op}): output {i} has a data-dependent shape and feeds "
                    f"{users[v][0].op}; such outputs are supported only as graph outputs")
    return graph
