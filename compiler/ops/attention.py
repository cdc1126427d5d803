"""LinearAttention (opset 27): a recurrent state per KV head, one token at a time.

Its ONNX function body loops with Scan, which we do not compile, so the op gets
its own kernel. Q/K/V/decay/beta are packed [B, T, heads*dim]; the state is
(B, kv_heads, d_k, d_v). (Attention and FlexAttention expand into their
function bodies in the frontend.)"""
from __future__ import annotations

from ..registry import OPAQUE, register
from .common import ShapeError, attr

# update_rule -> (gated: decays the state by exp(decay), delta: writes beta * (v - S^T k))
UPDATE_RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True),
                "gated_delta": (True, True)}


def update_rule(node) -> tuple:
    rule = attr(node, "update_rule", "gated_delta")
    if rule not in UPDATE_RULES:
        raise ShapeError(f"LinearAttention: unknown update_rule {rule!r}")
    gated, delta = UPDATE_RULES[rule]
    for i, name, needed in ((4, "decay", gated), (5, "beta", delta)):
        if (node.input(i) is not None) != needed:
            raise ShapeError(f"LinearAttention: update_rule {rule!r} {'needs' if needed else 'forbids'} {name}")
    return gated, delta


def heads(node) -> tuple:
    """(q_heads, kv_heads, d_k, d_v), checked against the packed shapes."""
    q, k, v = node.inputs[:3]
    hq, hkv = int(attr(node, "q_num_heads", 0)), int(attr(node, "kv_num_heads", 0))
    if any(len(x.shape) != 3 for x in (q, k, v)):
        raise ShapeError("LinearAttention: query, key and value must be rank 3 (B, T, heads*dim)")
    if hq <= 0 or hkv <= 0 or hq % hkv or q.shape[2] % hq or v.shape[2] % hkv:
        raise ShapeError("LinearAttention: q_num_heads must be a multiple of kv_num_heads, dims divisible by heads")
    dk, dv = q.shape[2] // hq, v.shape[2] // hkv
    if k.shape != q.shape[:2] + (hkv * dk,) or v.shape[:2] != q.shape[:2]:
        raise ShapeError(f"LinearAttention: key {k.shape} or value {v.shape} do not fit query {q.shape}")
    decay, beta = node.input(4), node.input(5)
    if decay is not None and decay.shape not in (q.shape[:2] + (hkv,), q.shape[:2] + (hkv * dk,)):
        raise ShapeError(f"LinearAttention: decay {decay.shape} must be (B, T, kv_heads[*d_k])")
    if beta is not None and beta.shape not in (q.shape[:2] + (hkv,), q.shape[:2] + (1,)):
        raise ShapeError(f"LinearAttention: beta {beta.shape} must be (B, T, kv_heads or 1)")
    return hq, hkv, dk, dv


def _infer(node):
    q, past = node.inputs[0], node.input(3)
    hq, hkv, dk, dv = heads(node)
    update_rule(node)
    state = (q.shape[0], hkv, dk, dv)
    if past is not None and past.shape != state:
        raise ShapeError(f"LinearAttention: past_state {past.shape}, expected {state}")
    state_dtype = past.dtype if past is not None else q.dtype
    return [(q.dtype, q.shape[:2] + (hq * dv,)), (state_dtype, state)][:len(node.outputs)]


register("LinearAttention", OPAQUE, _infer, max_outputs=2)
