"""The tensor IR: typed Values, Nodes with normalised attributes, and a Graph.

After specialisation every shape is concrete (a tuple of ints); the model's
symbolic dims live only in the input signature (see compiler.frontend).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

_ids = itertools.count()


@dataclass(eq=False)
class Value:
    """A tensor: dtype, concrete shape, and its data when known at compile time."""
    name: str
    dtype: np.dtype
    shape: tuple
    const: np.ndarray | None = None
    uid: int = field(default_factory=lambda: next(_ids))

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        tag = " const" if self.is_const else ""
        return f"%{self.uid}:{np.dtype(self.dtype).name}[{dims}]{tag}"


@dataclass(eq=False)
class Node:
    """One operation. `inputs` may hold None for an omitted optional input."""
    op: str
    inputs: list
    outputs: list
    attrs: dict
    name: str = ""
    domain: str = ""
    version: int = 0
    shape_math: bool = False    # its outputs decide shapes: host folding may do float math too

    def input(self, i: int):
        return self.inputs[i] if i < len(self.inputs) else None

    def __repr__(self) -> str:
        ins = ", ".join("_" if v is None else repr(v) for v in self.inputs)
        outs = ", ".join(repr(v) for v in self.outputs)
        attrs = " ".join(f"{k}={_short(v)}" for k, v in sorted(self.attrs.items()))
        return f"{outs} = {self.op}({ins}){' ' + attrs if attrs else ''}"


def _short(v):
    if isinstance(v, np.ndarray):
        return f"array{list(v.shape)}"
    return repr(v)


@dataclass(eq=False)
class Graph:
    inputs: list
    outputs: list
    nodes: list

    def producers(self) -> dict:
        return {v: n for n in self.nodes for v in n.outputs}

    def consumers(self) -> dict:
        users: dict = {}
        for n in self.nodes:
            for v in n.inputs:
                if v is not None:
                    users.setdefault(v, []).append(n)
        return users

    def to_networkx(self) -> nx.DiGraph:
        """Nodes as graph vertices, an edge per producer -> consumer."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        prod = self.producers()
        for n in self.nodes:
            for v in n.inputs:
                if v is not None and v in prod:
                    g.add_edge(prod[v], n)
        return g

    def toposort(self) -> "Graph":
        g = self.to_networkx()
        index = {n: i for i, n in enumerate(self.nodes)}
        order = list(nx.lexicographical_topological_sort(g, key=index.get))
        return Graph(self.inputs, self.outputs, order)

    def __str__(self) -> str:
        lines = ["graph(" + ", ".join(repr(v) for v in self.inputs) + ") {"]
        lines += ["  " + repr(n) for n in self.nodes]
        lines.append("  return " + ", ".join(repr(v) for v in self.outputs))
        lines.append("}")
        return "\n".join(lines)
