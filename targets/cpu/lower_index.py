"""CPU lowerings onto targets/cpu/kernels/indexing.py (conventions in its docstring)."""
from __future__ import annotations

import numpy as np

from compiler.ops import indexing as index_ops
from compiler.ops.common import attr, axis, const_of, ints

from . import source
from .lower import lower, transpose_into, transposed

REDUCTIONS = {"none": 0, "add": 1, "mul": 2, "max": 3, "min": 4}


def _prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64))


def _around(shape, a):
    """(outer, n, inner) view of `shape` around axis a."""
    return source.ints((_prod(shape[:a]), shape[a], _prod(shape[a + 1:])))


@lower("Gather")
def _gather(node, em):
    d, idx, out = node.inputs[0], node.inputs[1], node.outputs[0]
    a = axis(attr(node, "axis", 0), len(d.shape))
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.gather({em[d]}.reshape({_around(d.shape, a)}), {em[idx]}.reshape({idx.size}), "
            f"{res}.reshape({source.ints((_prod(d.shape[:a]), idx.size, _prod(d.shape[a + 1:])))}))")


def _shape_const(em, shape):
    return em.const(np.asarray(shape, np.int64))


@lower("GatherElements")
def _gather_elements(node, em):
    d, idx, out = node.inputs[0], node.inputs[1], node.outputs[0]
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.gather_elements({em[d]}.reshape({d.size}), {_shape_const(em, d.shape)}, {em[idx]}.reshape({idx.size}), "
            f"{_shape_const(em, idx.shape)}, {res}.reshape({out.size}), {axis(attr(node, 'axis', 0), len(d.shape))})")


@lower("ScatterElements", "Scatter")
def _scatter_elements(node, em):
    d, idx, upd = node.inputs[:3]
    out = node.outputs[0]
    red = REDUCTIONS[attr(node, "reduction", "none")]
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.scatter_elements({em[d]}.reshape({d.size}), {_shape_const(em, d.shape)}, {em[idx]}.reshape({idx.size}), "
            f"{_shape_const(em, idx.shape)}, {em[upd]}.reshape({upd.size}), {res}.reshape({out.size}), "
            f"{axis(attr(node, 'axis', 0), len(d.shape))}, {red})")


@lower("GatherND")
def _gather_nd(node, em):
    d, idx, out = node.inputs[0], node.inputs[1], node.outputs[0]
    b = attr(node, "batch_dims", 0)
    k = idx.shape[-1]
    d3 = (_prod(d.shape[:b]), _prod(d.shape[b:b + k]), _prod(d.shape[b + k:]))
    nb = _prod(idx.shape[:b])
    i3 = (nb, idx.size // max(nb * k, 1) if k else _prod(idx.shape[b:-1]), k)
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.gather_nd({em[d]}.reshape({source.ints(d3)}), {_shape_const(em, d.shape[b:b + k])}, "
            f"{em[idx]}.reshape({source.ints(i3)}), {res}.reshape({source.ints((i3[0], i3[1], d3[2]))}))")


@lower("ScatterND")
def _scatter_nd(node, em):
    d, idx, upd = node.inputs[:3]
    out = node.outputs[0]
    k = idx.shape[-1]
    d2 = (_prod(d.shape[:k]), _prod(d.shape[k:]))
    n = idx.size // max(k, 1)
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.scatter_nd({em[d]}.reshape({source.ints(d2)}), {_shape_const(em, d.shape[:k])}, "
            f"{em[idx]}.reshape({source.ints((n, k))}), {em[upd]}.reshape({source.ints((n, d2[1]))}), "
            f"{res}.reshape({source.ints(d2)}), {REDUCTIONS[attr(node, 'reduction', 'none')]})")


@lower("TopK")
def _topk(node, em):
    x = node.inputs[0]
    rank = len(x.shape)
    a = axis(attr(node, "axis", -1), rank)
    k = index_ops.topk_k(node)
    perm = [i for i in range(rank) if i != a] + [a]
    name = em[x] if a == rank - 1 else transposed(em, em[x], x.shape, perm)
    moved = tuple(x.shape[p] for p in perm)
    rows = _prod(moved[:-1])
    L = em.lib("indexing")
    vals, inds = em.tmp(), em.tmp()
    kshape = moved[:-1] + (k,)
    em.emit(f"{vals} = {em.empty(kshape, x.dtype)}")
    em.emit(f"{inds} = {em.empty(kshape, np.int64)}")
    em.emit(f"{L}.topk({name}.reshape({source.ints((rows, x.shape[a]))}), {k}, {bool(attr(node, 'largest', 1))}, "
            f"{bool(attr(node, 'sorted', 1))}, {vals}.reshape({source.ints((rows, k))}), {inds}.reshape({source.ints((rows, k))}))")
    inv = [int(i) for i in np.argsort(perm)]
    for src, v in zip((vals, inds), node.outputs):
        if a == rank - 1:
            em.define(v, src)
        else:
            res = em.alloc(v)
            transpose_into(em, src, kshape, inv, res)


@lower("ArgMax", "ArgMin")
def _arg(node, em):
    x, out = node.inputs[0], node.outputs[0]
    a = axis(attr(node, "axis", 0), len(x.shape))
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.arg_reduce({em[x]}.reshape({_around(x.shape, a)}), "
            f"{res}.reshape({source.ints((_prod(x.shape[:a]), _prod(x.shape[a + 1:])))}), "
            f"{node.op == 'ArgMax'}, {bool(attr(node, 'select_last_index', 0))})")


@lower("CumSum", "CumProd")
def _cumulative(node, em):
    x, out = node.inputs[0], node.outputs[0]
    a = axis(int(ints(const_of(node, 1))[0]), len(x.shape))
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.cumulative({em[x]}.reshape({_around(x.shape, a)}), {res}.reshape({_around(x.shape, a)}), "
            f"{bool(attr(node, 'exclusive', 0))}, {bool(attr(node, 'reverse', 0))}, {node.op == 'CumProd'})")


@lower("Trilu")
def _trilu(node, em):
    x, out = node.inputs[0], node.outputs[0]
    k = 0 if node.input(1) is None else int(ints(const_of(node, 1))[0])
    v3 = source.ints((_prod(x.shape[:-2]), x.shape[-2], x.shape[-1]))
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.trilu({em[x]}.reshape({v3}), {res}.reshape({v3}), {k}, {bool(attr(node, 'upper', 1))})")


@lower("OneHot")
def _one_hot(node, em):
    idx, values, out = node.inputs[0], node.inputs[2], node.outputs[0]
    a = axis(attr(node, "axis", -1), len(idx.shape) + 1)
    depth = out.shape[a]
    L = em.lib("indexing")
    res = em.alloc(out)
    v = em[values]
    em.emit(f"{L}.one_hot({em[idx]}.reshape({idx.size}), {depth}, {v}[0], {v}[1], "
            f"{res}.reshape({source.ints((_prod(idx.shape[:a]), depth, _prod(idx.shape[a:])))}))")


@lower("ReverseSequence")
def _reverse_sequence(node, em):
    x, lens, out = node.inputs[0], node.inputs[1], node.outputs[0]
    v3 = source.ints((x.shape[0], x.shape[1], _prod(x.shape[2:])))
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.reverse_sequence({em[x]}.reshape({v3}), {em[lens]}, {res}.reshape({v3}), "
            f"{int(attr(node, 'batch_axis', 1))}, {int(attr(node, 'time_axis', 0))})")


@lower("TensorScatter")
def _tensor_scatter(node, em):
    cache, upd, w, out = node.inputs[0], node.inputs[1], node.input(2), node.outputs[0]
    a = index_ops.tensor_scatter_axis(node)

    def view4(name, shape):
        return f"{name}.reshape({source.ints((shape[0], _prod(shape[1:a]), shape[a], _prod(shape[a + 1:])))})"
    idx = em.const(np.zeros(cache.shape[0], np.int64)) if w is None else em[w]
    L = em.lib("indexing")
    res = em.alloc(out)
    em.emit(f"{L}.tensor_scatter({view4(em[cache], cache.shape)}, {view4(em[upd], upd.shape)}, {idx}, "
            f"{view4(res, out.shape)}, {attr(node, 'mode', 'linear') == 'circular'})")
