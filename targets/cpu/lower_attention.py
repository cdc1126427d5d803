"""CPU lowering of LinearAttention onto targets/cpu/kernels/attention.py: the
packed [B, T, heads*dim] tensors are passed as 4-D views, absent inputs as empty arrays."""
from __future__ import annotations

from compiler.ops import attention as attention_ops
from compiler.ops.common import attr

from . import source
from .lower import lower


@lower("LinearAttention")
def _linear_attention(node, em):
    q, k, v = node.inputs[:3]
    past, decay, beta = node.input(3), node.input(4), node.input(5)
    hq, hkv, dk, dv = attention_ops.heads(node)
    gated, delta = attention_ops.update_rule(node)
    nb, nt = q.shape[:2]

    def view(x, shape):
        return f"{em[x]}.reshape({source.ints(shape)})"

    def given(x, shape, rank):
        return view(x, shape) if x is not None else em.empty((0,) * rank, q.dtype)

    out = em.alloc(node.outputs[0])
    state_shape = (nb, hkv, dk, dv)
    present = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1].name else None
    state = em.alloc(present) if present is not None else em.empty(state_shape, q.dtype)
    scale = float(attr(node, "scale", 0.0) or 0.0) or dk ** -0.5
    args = [view(q, (nb, nt, hq, dk)), view(k, (nb, nt, hkv, dk)), view(v, (nb, nt, hkv, dv)),
            given(past, state_shape, 4),
            given(decay, (nb, nt, hkv, decay.shape[2] // hkv) if decay is not None else None, 4),
            given(beta, (nb, nt, beta.shape[2]) if beta is not None else None, 3),
            f"{out}.reshape({source.ints((nb, nt, hq, dv))})", state, source.num(scale),
            source.num(gated), source.num(delta)]
    em.emit(f"{em.lib('attention')}.linear_attention({', '.join(args)})")
