"""Einsum on the CPU: a two-operand contraction that fits batched matmul is
transposed into (batch, m, k) x (batch, k, n) and goes to the linalg library;
anything else (diagonals, sums, 3+ operands) is one generated loop kernel."""
from __future__ import annotations

import numpy as np

from compiler.ir import Value
from compiler.ops.einsum import BROADCAST_DIM, einsum_spec

from . import source
from .emitter import NJIT
from .lower import lower, matmul_batched, transpose_into, transposed


def _prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64))


def _index(dims) -> str:
    return ", ".join("0" if d == BROADCAST_DIM else f"i{d}" for d in dims) or "0"


def _loop_kernel(em, spec, n_ops: int, dtype) -> str:
    args = ", ".join(["out"] + [f"a{j}" for j in range(n_ops)] + ["n"])
    lines, pad = [NJIT, f"def KERNEL({args}):"], "    "
    for i in spec.out:
        lines.append(f"{pad}for i{i} in range(n[{i}]):")
        pad += "    "
    lines.append(f"{pad}acc = {'0.0' if np.dtype(dtype).kind == 'f' else '0'}")
    inner = pad
    for i in range(len(spec.out), len(spec.sizes)):
        lines.append(f"{inner}for i{i} in range(n[{i}]):")
        inner += "    "
    term = " * ".join(f"a{j}[{_index(dims)}]" for j, dims in enumerate(spec.ins))
    lines.append(f"{inner}acc += {term}")
    lines.append(f"{pad}out[{_index(spec.out)}] = acc")
    return em.kernel("\n".join(lines))


def _matmul_plan(spec):
    """(batch, m, n, k) index lists when the contraction is a batched matmul, else None."""
    if len(spec.ins) != 2:
        return None
    a, b = spec.ins
    if BROADCAST_DIM in a + b or len(set(a)) != len(a) or len(set(b)) != len(b):
        return None
    out = set(spec.out)
    if any(i not in out and (i not in a or i not in b) for i in range(len(spec.sizes))):
        return None     # an index summed within one operand
    batch = [i for i in spec.out if i in a and i in b]
    m = [i for i in spec.out if i in a and i not in b]
    n = [i for i in spec.out if i in b and i not in a]
    k = [i for i in a if i not in out]
    return batch, m, n, k


def _arranged(em, v, dims, order):
    """Operand v (dims = its loop indices) transposed so its dims follow `order`."""
    perm = [dims.index(i) for i in order]
    if perm == list(range(len(perm))):
        return em[v]
    return transposed(em, em[v], v.shape, perm)


@lower("Einsum")
def _einsum(node, em):
    spec = einsum_spec(node)
    out = node.outputs[0]
    plan = _matmul_plan(spec)
    if plan is not None and out.dtype.kind == "f":
        batch, m, n, k = plan
        size = lambda idx: _prod([spec.sizes[i] for i in idx])   # noqa: E731
        nb, nm, nn_, nk = size(batch), size(m), size(n), size(k)
        a, b = node.inputs
        av = Value("", a.dtype, (nb, nm, nk))
        bv = Value("", b.dtype, (nb, nk, nn_))
        em.define(av, f"{_arranged(em, a, list(spec.ins[0]), batch + m + k)}.reshape({source.ints(av.shape)})")
        em.define(bv, f"{_arranged(em, b, list(spec.ins[1]), batch + k + n)}.reshape({source.ints(bv.shape)})")
        mid = batch + m + n
        if mid == list(spec.out):
            res = em.alloc(out)
            matmul_batched(em, av, bv, res)
            return
        t = em.tmp()
        mid_shape = tuple(spec.sizes[i] for i in mid)
        em.emit(f"{t} = {em.empty(mid_shape, out.dtype)}")
        matmul_batched(em, av, bv, t)
        transpose_into(em, t, mid_shape, [mid.index(i) for i in spec.out], em.alloc(out))
        return
    k = _loop_kernel(em, spec, len(node.inputs), out.dtype)
    res = em.alloc(out)
    ops = [em[v] if len(v.shape) else f"{em[v]}.reshape(1)" for v in node.inputs]
    target = res if len(out.shape) else f"{res}.reshape(1)"
    em.emit(f"{k}({', '.join([target] + ops + [em.const(np.asarray(spec.sizes, np.int64))])})")
