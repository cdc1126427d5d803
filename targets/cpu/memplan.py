"""Memory planning of the graph function: its `np.empty` buffers become typed
views of one arena (a uint8 array the runtime allocates once per
specialisation and passes in), buffers whose live ranges do not overlap
sharing bytes.

It reads the generated lines, not the IR: a line's uses are the names it
mentions, and an assignment not known to copy (`.copy()`, `.astype()`,
`np.concatenate`) may alias every buffer it mentions (reshape/slice views,
a library's result), so such names extend their bases' lives. Buffers a
returned name may alias are graph outputs: they stay `np.empty`, as do
buffers of size 0. Greedy by size, first fit over 64-byte aligned offsets."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

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
    first: int | None = None   # its first use after the definition
    escapes: bool = False      # a returned name may alias it
    offset: int | None = None  # in the arena; None: stays np.empty
    group: list = field(default_factory=list)   # buffers sharing its bytes in place (the head holds the list)

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
            buf = buffers[b]
            buf.end = i
            if buf.first is None:
                buf.first = i
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


def share_in_place(buffers: dict[str, Buffer], candidates: list) -> None:
    """Merge an elementwise kernel's output into an input buffer whose last use is that
    kernel: `candidates` are (line, output name, same-shape same-dtype input names)."""
    head = {name: name for name in buffers}
    for line, out, ins in candidates:
        o = buffers.get(out)
        if o is None or o.escapes or o.nbytes == 0 or o.first != line or head[out] != out:
            continue
        for name in ins:
            b = buffers.get(name)
            if b is None or b.escapes or b.nbytes != o.nbytes:
                continue
            h = buffers[head[name]]
            if max(m.end for m in h.group or [h]) != line:
                continue
            h.group = (h.group or [h]) + [o]
            head[out] = h.name
            break


def assign(buffers: dict[str, Buffer]) -> int:
    """Offsets for the buffers that may live in the arena; returns its size in bytes."""
    slots = []   # (start, end, size, members)
    grouped = {m.name for b in buffers.values() for m in b.group[1:]}
    for b in buffers.values():
        if b.escapes or b.nbytes == 0 or b.name in grouped:
            continue
        members = b.group or [b]
        slots.append((min(m.start for m in members), max(m.end for m in members),
                      -(-max(m.nbytes for m in members) // ALIGN) * ALIGN, members))
    slots.sort(key=lambda s: (-s[2], s[0]))
    placed, size = [], 0      # (start, end, offset, size)
    for start, end, n, members in slots:
        busy = sorted((o, o + k) for s, e, o, k in placed if s <= end and start <= e)
        offset = 0
        for lo, hi in busy:
            if offset + n <= lo:
                break
            offset = max(offset, hi)
        placed.append((start, end, offset, n))
        size = max(size, offset + n)
        for m in members:
            m.offset = offset
    return size


def plan(lines: list[str], outputs: list[str], candidates=()) -> tuple[list[str], int, dict]:
    """(the lines with planned buffers as arena views, the arena's size, stats)."""
    targets = [m.group(1) for line in lines if (m := _ASSIGN.match(line))]
    buffers = live_ranges(lines, outputs)
    if len(targets) != len(set(targets)):      # a name bound twice (never, from our lowerings)
        buffers = {}
    share_in_place(buffers, list(candidates))
    size = assign(buffers)
    lines = list(lines)
    for b in buffers.values():
        if b.offset is not None:
            lines[b.start] = (f"{b.name} = {ARENA}[{b.offset}:{b.offset + b.nbytes}]"
                              f".view(np.{b.dtype}).reshape({source.ints(b.shape)})")
    planned = [b for b in buffers.values() if b.offset is not None]
    stats = {"arena": size, "planned": sum(b.nbytes for b in planned), "buffers": buffers,
             "in_place": sum(len(b.group) - 1 for b in buffers.values() if b.group),
             "unplanned": sum(b.nbytes for b in buffers.values() if b.offset is None)}
    return lines, size, stats

