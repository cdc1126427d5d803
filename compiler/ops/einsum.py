"""Einsum: the equation is parsed here, on the host, into integer index
structure (EinsumSpec); targets see only those integers, never the text."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import OPAQUE, register
from .common import ShapeError, attr

BROADCAST_DIM = -1   # an operand's ellipsis dim of size 1 against a larger one: always index 0


@dataclass(frozen=True)
class EinsumSpec:
    ins: tuple      # per operand, per dim: the loop index it reads (or BROADCAST_DIM)
    out: tuple      # the output's loop indices: 0 .. len(out)-1, in order
    sizes: tuple    # every loop index's extent (output indices first, then the summed ones)


def _term_keys(term: str, rank: int) -> list:
    """A term's dim keys: letters, and negative ints for ellipsis dims counted from the right."""
    if term.count("...") > 1 or "." in term.replace("...", ""):
        raise ShapeError("Einsum: malformed ellipsis")
    if "..." not in term:
        if len(term) != rank:
            raise ShapeError(f"Einsum: a term has {len(term)} indices for rank {rank}")
        return list(term)
    pre, post = term.split("...")
    n = rank - len(pre) - len(post)
    if n < 0:
        raise ShapeError("Einsum: too many indices for the operand's rank")
    return list(pre) + list(range(-n, 0)) + list(post)


def einsum_spec(node) -> EinsumSpec:
    eq = str(attr(node, "equation", "")).replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    operands = list(node.inputs)
    if len(terms) != len(operands) or any(v is None for v in operands):
        raise ShapeError("Einsum: the equation's terms do not match the inputs")
    keys = [_term_keys(t, len(v.shape)) for t, v in zip(terms, operands)]
    sizes: dict = {}
    for ks, v in zip(keys, operands):
        for k, d in zip(ks, v.shape):
            old = sizes.get(k, 1 if isinstance(k, int) else d)
            if isinstance(k, int):          # ellipsis dims broadcast
                if old != d and 1 not in (old, d):
                    raise ShapeError("Einsum: ellipsis dims do not broadcast")
                sizes[k] = max(old, d) if 1 in (old, d) else d
            elif old != d:
                raise ShapeError(f"Einsum: index sizes {old} and {d} differ")
            else:
                sizes[k] = d
    n_ell = max([-min([k for k in ks if isinstance(k, int)], default=0) for ks in keys], default=0)
    ellipsis = list(range(-n_ell, 0))
    if arrow:
        pre, _, post = rhs.partition("...")
        out = list(pre) + (ellipsis if "..." in rhs else []) + list(post)
    else:
        letters = [k for ks in keys for k in ks if not isinstance(k, int)]
        out = ellipsis + sorted(k for k in set(letters) if letters.count(k) == 1)
    if len(set(out)) != len(out) or any(k not in sizes for k in out):
        raise ShapeError("Einsum: bad output indices")
    order = list(out) + [k for k in sizes if k not in out]
    ids = {k: i for i, k in enumerate(order)}
    ins = tuple(tuple(BROADCAST_DIM if isinstance(k, int) and d == 1 and sizes[k] != 1 else ids[k]
                      for k, d in zip(ks, v.shape)) for ks, v in zip(keys, operands))
    return EinsumSpec(ins, tuple(range(len(out))), tuple(int(sizes[k]) for k in order))


def _infer(node):
    spec = einsum_spec(node)
    return [(node.inputs[0].dtype, spec.sizes[:len(spec.out)])]


register("Einsum", OPAQUE, _infer)
