"""Scratch memory of one compiled specialisation: the arena its graph function
carves its intermediate buffers from (targets/cpu/memplan.py plans it), passed
as one array per element type it holds, all views of the same bytes.

Allocated once and reused by every call; a call that finds it taken (another
thread is inside the graph) gets one of its own, which is then kept for the
next such overlap. No lock: list.pop and list.append are atomic."""
from __future__ import annotations

import numpy as np

ALIGN = 64


def aligned_bytes(nbytes: int) -> np.ndarray:
    """A writable uint8 buffer of nbytes starting on an ALIGN boundary (numpy's own start is
    only 16-byte aligned): the arenas, and the constants blob the disk cache reads."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    skip = -raw.ctypes.data % ALIGN
    return raw[skip:skip + nbytes]


class Arenas:
    """`layout`: {"bytes": size, "views": [type name, ...]} as the manifest has it."""

    def __init__(self, layout: dict):
        self.nbytes = layout["bytes"]
        self.dtypes = [np.dtype(d) for d in layout["views"]]
        self.free = [self.new()]

    def new(self) -> tuple:
        """The arena's views: one per type, over the same ALIGN-aligned bytes."""
        raw = aligned_bytes(self.nbytes)
        return tuple(raw.view(d) for d in self.dtypes)

    def take(self) -> tuple:
        try:
            return self.free.pop()
        except IndexError:
            return self.new()

    def give(self, arena: tuple):
        self.free.append(arena)
