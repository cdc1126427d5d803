"""Fusion by kinds: chains and trees of elementwise/broadcast ops become one
"Fused" node whose body a target renders as a single loop nest.

A producer joins its consumer's group when its output has that one consumer,
is not a graph output, and has the group's output shape (the loop runs over
it); groups are merged only when the graph of groups stays acyclic."""
from __future__ import annotations

from ..ir import Graph, Node
from ..registry import BROADCAST, ELEMENTWISE, lookup

FUSABLE = (ELEMENTWISE, BROADCAST)


def _scalar_op(node, supports) -> bool:
    opdef = lookup(node.op, node.domain)
    return (opdef is not None and opdef.kind in FUSABLE and len(node.outputs) == 1
            and supports(node))


def fuse_elementwise(graph: Graph, supports, enabled: bool = True) -> Graph:
    """Wrap every scalar-renderable op in a Fused node and, if enabled, merge chains."""
    users = graph.consumers()
    outputs = set(graph.outputs)
    group_of: dict = {}   # node -> list of member nodes (shared list object per group)
    for n in graph.nodes:
        if not _scalar_op(n, supports):
            continue
        group = [n]
        group_of[n] = group
        if not enabled:
            continue
        producers = {v: p for p in group_of for v in p.outputs}
        for v in n.inputs:
            p = producers.get(v)
            if p is None or group_of[p] is group or v in outputs:
                continue
            if len(users.get(v, [])) != 1 or v.shape != n.outputs[0].shape:
                continue
            other = group_of[p]
            if other[-1] is not p:      # p must be its group's root (output)
                continue
            merged = other + group
            if _creates_cycle(users, group_of, merged):
                continue
            for m in merged:
                group_of[m] = merged
            group = merged
    return _rebuild(graph, group_of)


def _creates_cycle(users, group_of, merged) -> bool:
    """Would `merged` as one node close a cycle? Yes when a path leaves it and
    comes back; a group already formed counts as one node (enter one member,
    leave from any). A walk over consumers, linear in the graph per merge."""
    members = set(merged)
    seen: set = set()
    stack = [u for m in merged for v in m.outputs for u in users.get(v, ()) if u not in members]
    while stack:
        n = stack.pop()
        if n in members:
            return True
        if n in seen:
            continue
        group = group_of.get(n, (n,))
        seen.update(group)
        stack.extend(u for g in group for v in g.outputs for u in users.get(v, ()) if u not in seen)
    return False


def _rebuild(graph, group_of) -> Graph:
    done, nodes = set(), []
    # Emit each group where its root (last member) stood, so its inputs are computed before it.
    for n in graph.nodes:
        if n not in group_of:
            nodes.append(n)
            continue
        group = group_of[n]
        if group[-1] is not n or id(group) in done:
            continue
        done.add(id(group))
        inside = {v for m in group for v in m.outputs}
        ext = []
        for m in group:
            for v in m.inputs:
                if v is not None and v not in inside and v not in ext:
                    ext.append(v)
        nodes.append(Node("Fused", ext, [group[-1].outputs[0]], {"body": list(group)},
                          name="+".join(m.name or m.op for m in group)))
    return Graph(graph.inputs, graph.outputs, nodes)
