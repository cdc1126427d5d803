"""CUDA lowerings: the CPU table, with the entries that use host numpy
(concatenate, slicing copies, np.dot, broadcast_to) replaced by kernels."""
from __future__ import annotations

import numpy as np

from compiler.ir import Node
from compiler.ops import shape as shape_ops
from compiler.ops.common import attr, axis
from targets.cpu import lower as cpu

from . import elementwise

LOWER: dict = dict(cpu.LOWER)


def lower(*ops):
    def deco(fn):
        for op in ops:
            LOWER[op] = fn
        return fn
    return deco


LOWER["Fused"] = elementwise.lower_fused


def _ints(em, xs) -> str:
    """Small int vectors (offsets, steps) travel as device constants."""
    return em.const(np.asarray(xs, np.int64).reshape(-1) if len(xs) else np.zeros(1, np.int64))


def copy_window(em, src, shape, dst, starts, steps, dst_offsets=None):
    """dst[off + i] = src[start + i * step] over `shape` (Slice, Split, Concat)."""
    rank = len(shape)
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return
    idx_src = ", ".join(f"s[{d}] + i{d} * s[{rank + d}]" for d in range(rank))
    if dst_offsets is None:
        body = [f"out[{', '.join(f'i{d}' for d in range(rank))}] = a[{idx_src}]"]
        k = em.loop_kernel("out, a, s", "out", rank, body)
        em.launch(k, size, [dst, src, _ints(em, list(starts) + list(steps))])
        return
    idx_dst = ", ".join(f"s[{2 * rank + d}] + i{d}" for d in range(rank))
    body = [f"out[{idx_dst}] = a[{idx_src}]"]
    k = em.loop_kernel("out, a, s", "a", rank, body)
    em.launch(k, size, [dst, src, _ints(em, list(starts) + list(steps) + list(dst_offsets))])


@lower("Concat")
def _concat(node, em):
    out = node.outputs[0]
    rank = len(out.shape)
    a = axis(attr(node, "axis"), rank)
    res = em.alloc(out)
    off = 0
    for v in node.inputs:
        if v is None:
            continue
        offsets = [0] * rank
        offsets[a] = off
        copy_window(em, em[v], v.shape, res, [0] * rank, [1] * rank, offsets)
        off += v.shape[a]


def _slice_into(em, x, slices, out):
    starts, steps = [], []
    for d, s in enumerate(slices):
        start, _, step = s.indices(x.shape[d])
        starts.append(start)
        steps.append(step)
    res = em.alloc(out)
    copy_window(em, em[x], out.shape, res, starts, steps)


@lower("Slice")
def _slice(node, em):
    _slice_into(em, node.inputs[0], shape_ops.python_slices(node), node.outputs[0])


@lower("Split")
def _split(node, em):
    for v, sl in shape_ops.split_slices(node):
        _slice_into(em, node.inputs[0], sl, v)


@lower("Expand")
def _expand(node, em):
    body = Node("Identity", [node.inputs[0]], node.outputs, {})
    elementwise.lower_fused(Node("Fused", [node.inputs[0]], node.outputs, {"body": [body]}), em)


@lower("MatMul")
def _matmul(node, em):
    cpu.matmul_batched(em, node.inputs[0], node.inputs[1], em.alloc(node.outputs[0]))


def _from_reduce_library(fn):
    """The CUDA reduce library also holds ArgMax/ArgMin, CumSum/CumProd and
    InstanceNormalization (they share its block reductions); the CPU keeps
    them in its indexing and nn libraries."""
    def lowering(node, em):
        em.lib_alias = {"indexing": "reduce", "nn": "reduce"}
        try:
            fn(node, em)
        finally:
            em.lib_alias = {}
    return lowering


for _op in ("ArgMax", "ArgMin", "CumSum", "CumProd", "InstanceNormalization"):
    LOWER[_op] = _from_reduce_library(cpu.LOWER[_op])
