"""Small helpers shared by the op definitions: attributes, axes, broadcasting."""
from __future__ import annotations

import numpy as np

from ..ir import Node


class ShapeError(Exception):
    """A node whose inputs do not fit the op's rules."""


def attr(node: Node, name: str, default=None):
    return node.attrs.get(name, default)


def const_of(node: Node, i: int, what: str = "input"):
    """The compile-time value of input i (None when omitted); an error if it is not known."""
    v = node.input(i)
    if v is None:
        return None
    if v.const is None:
        raise ShapeError(f"{node.op} needs {what} {i} to be known at compile time")
    return v.const


def axis(a: int, rank: int) -> int:
    a = int(a)
    if not -max(rank, 1) <= a < max(rank, 1):
        raise ShapeError(f"axis {a} out of range for rank {rank}")
    return a % max(rank, 1)


def axes(values, rank: int) -> tuple:
    return tuple(sorted({axis(a, rank) for a in values}))


def broadcast(*shapes) -> tuple:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError as e:
        raise ShapeError(str(e)) from None


def attr_to_input(node: Node, name: str, slot: int, dtype=np.int64, default=None):
    """Opset change helper: move attribute `name` into input `slot` as a constant."""
    from ..ir import Value
    if name not in node.attrs and default is None:
        return
    value = np.asarray(node.attrs.pop(name, default), dtype=dtype)
    while len(node.inputs) <= slot:
        node.inputs.append(None)
    node.inputs[slot] = Value(f"{node.name}/{name}", value.dtype, value.shape, value)


def ints(a) -> tuple:
    return tuple(int(x) for x in np.asarray(a).reshape(-1))
