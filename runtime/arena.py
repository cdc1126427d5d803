"""Scratch memory of one compiled specialisation: the arena its graph function
carves its intermediate buffers from (targets/cpu/memplan.py plans it).

Allocated once and reused by every call; a call that finds it taken (another
thread is inside the graph) gets one of its own, which is then kept for the
next such overlap. No lock: list.pop and list.append are atomic."""
from __future__ import annotations

import numpy as np

ALIGN = 64


class Arenas:
    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.free = [self.new()]

    def new(self) -> np.ndarray:
        """A C-contiguous uint8 array whose first byte is ALIGN-aligned."""
        raw = np.empty(self.nbytes + ALIGN, np.uint8)
        skip = -raw.ctypes.data % ALIGN
        return raw[skip:skip + self.nbytes]

    def take(self) -> np.ndarray:
        try:
            return self.free.pop()
        except IndexError:
            return self.new()

    def give(self, arena: np.ndarray):
        self.free.append(arena)
