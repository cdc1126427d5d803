"""Memory planning of the graph function: its `np.empty` buffers become slices
of one arena (bytes the runtime allocates once per specialisation and passes
in, runtime/arena.py), buffers whose live ranges do not overlap sharing bytes.

It reads the generated lines, not the IR: a line's uses are the names it
mentions, and an assignment not known to copy (`.copy()`, `.astype()`,
`np.concatenate`) may alias every buffer it mentions (reshape/slice views,
a library's result), so such names extend their bases' lives. Buffers a
returned name may alias are graph outputs: they stay `np.empty`, as do
buffers of size 0. Greedy by size, first fit over 64-byte aligned offsets.

No buffer is written in place over an input at its last use: a fused kernel
whose output is its input fails LLVM's runtime alias check and runs its
scalar loop (bert_small was 20% slower so, for an arena 11% smaller)."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import numpy as np

from . import source

ALIGN = 64
ARENA = "arena"
_EMPTY = re.compile(r"^(\w+) = np\.empty\(\(([\d, ]*)\), np\.(\w+)\)$")
_ASSIGN = re.compile(r"^\s*(\w+) = (.+)$")
_NAME = re.compile(r"\b[A-Za-z_]\w*\b")
FRESH_METHODS = {"copy", "astype"}
FRESH_FUNCTIONS = {"concatenate", "empty", "zeros", "ones", "full"}


@dataclass
class Buffer:
    name: str
    shape: tuple
    dtype: str                 # a numpy type name, as the line spells it (np.<dtype>)
    start: int                 # the line defining it
    end: int                   # its last use, through any alias
    escapes: bool = False      # a returned name may alias it
    offset: int | None = None  # in the arena; None: stays np.empty

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def live_ranges(lines: list[str], outputs: list[str]) -> dict[str, Buffer]:
    """Every `np.empty` buffer of `lines` with its live range; `outputs` are the
    returned expressions (a bare name escapes, a copy is a use at the end)."""
    buffers: dict[str, Buffer] = {}
    bases: dict[str, set] = {}          # name -> the buffers it may share memory with
    for i, line in enumerate(lines):
        m = _EMPTY.match(line)
        if m:
            name = m.group(1)
            shape = tuple(int(d) for d in m.group(2).replace(" ", "").split(",") if d)
            buffers[name] = Buffer(name, shape, m.group(3), i, i)
            bases[name] = {name}
            continue
        a = _ASSIGN.match(line)
        rhs = a.group(2) if a else line
        mentioned = {b for n in _NAME.findall(rhs) for b in bases.get(n, ())}
        for b in mentioned:
            buffers[b].end = i
        if a:
            bases[a.group(1)] = set() if _fresh(rhs) else mentioned
    for expr in outputs:
        for b in {b for n in _NAME.findall(expr) for b in bases.get(n, ())}:
            buffers[b].end = len(lines)
            buffers[b].escapes |= expr in bases    # a bare name: the caller gets these bytes
    return buffers


def _fresh(rhs: str) -> bool:
    """Whether the expression certainly makes a new array (else it may be a view)."""
    try:
        e = ast.parse(rhs, mode="eval").body
    except SyntaxError:
        return False
    if not (isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute)):
        return False
    if e.func.attr in FRESH_METHODS:
        return True
    return isinstance(e.func.value, ast.Name) and e.func.value.id == "np" and e.func.attr in FRESH_FUNCTIONS


def assign(buffers: dict[str, Buffer]) -> int:
    """Offsets for the buffers that may live in the arena; returns its size in bytes."""
    slots = sorted((b for b in buffers.values() if not b.escapes and b.nbytes), key=lambda b: (-b.nbytes, b.start))
    placed, size = [], 0      # (start, end, offset, size)
    for b in slots:
        start, end, n = b.start, b.end, -(-b.nbytes // ALIGN) * ALIGN
        busy = sorted((o, o + k) for s, e, o, k in placed if s <= end and start <= e)
        offset = 0
        for lo, hi in busy:
            if offset + n <= lo:
                break
            offset = max(offset, hi)
        placed.append((start, end, offset, n))
        size = max(size, offset + n)
        b.offset = offset
    return size


def plan(lines: list[str], outputs: list[str]) -> tuple[list[str], dict | None, dict]:
    """(the lines with planned buffers as slices of the arena, the arena {"bytes", "views"}
    or None, stats). The graph takes the arena as one argument per type it holds
    (`views`: "arena_<type>", the same bytes as that type): a `.view` in a jitted graph
    cost Numba 0.3 s more to compile."""
    targets = [m.group(1) for line in lines if (m := _ASSIGN.match(line))]
    buffers = live_ranges(lines, outputs)
    if len(targets) != len(set(targets)):      # a name bound twice (never, from our lowerings)
        buffers = {}
    size = assign(buffers)
    lines = list(lines)
    planned = [b for b in buffers.values() if b.offset is not None]
    for b in planned:
        k = np.dtype(b.dtype).itemsize
        lines[b.start] = (f"{b.name} = {ARENA}_{b.dtype}[{b.offset // k}:{(b.offset + b.nbytes) // k}]"
                          f".reshape({source.ints(b.shape)})")
    arena = {"bytes": size, "views": sorted({b.dtype for b in planned})} if planned else None
    stats = {"arena": size, "planned": sum(b.nbytes for b in planned), "buffers": buffers,
             "unplanned": sum(b.nbytes for b in buffers.values() if b.offset is None)}
    return lines, arena, stats


def arguments(arena: dict | None) -> list[str]:
    """The graph function's arena parameters, in the order the runtime passes them."""
    return [f"{ARENA}_{d}" for d in arena["views"]] if arena else []

