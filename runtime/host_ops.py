"""Ops that run on the host between compiled segments: sequences (Python
lists of arrays) and optionals (None or a value). They move whole tensors
around and never compute on their elements; numeric work stays compiled.

HOST_OPS: (domain, op_type) -> fn(attrs, *inputs) -> tuple of outputs, with
attrs as plain Python values and an omitted input as None; these ops always
run here. NON_TENSOR_OPS, same form: ops that run here only on non-tensor
operands. Sibling modules (`host_strings`, string ops) add their tables."""
from __future__ import annotations

import importlib

import numpy as np


def _index(pos, n: int, end_ok: bool = False) -> int:
    """A sequence position (a scalar tensor, negative from the end), checked."""
    i = int(np.asarray(pos).reshape(-1)[0])
    i = i + n if i < 0 else i
    if not 0 <= i < n + end_ok:
        raise IndexError(f"sequence position {int(np.asarray(pos).reshape(-1)[0])} is out of range for length {n}")
    return i


def _insert(attrs, seq, x, pos=None):
    out = list(seq)
    out.insert(len(out) if pos is None else _index(pos, len(out), end_ok=True), x)
    return (out,)


def _erase(attrs, seq, pos=None):
    out = list(seq)
    del out[-1 if pos is None else _index(pos, len(out))]
    return (out,)


def _split(attrs, x, split=None):
    """SplitToSequence: pieces of `split` sizes (a scalar: equal pieces, the last shorter),
    or every index along the axis (squeezed unless keepdims)."""
    axis = attrs.get("axis", 0)
    n = x.shape[axis]
    if split is None:
        parts = [np.take(x, [i], axis=axis) for i in range(n)]
        return ([np.squeeze(p, axis) for p in parts] if not attrs.get("keepdims", 1) else parts,)
    split = np.asarray(split).astype(np.int64)
    sizes = [int(split)] * (n // int(split)) + ([n % int(split)] if n % int(split) else []) if split.ndim == 0 \
        else [int(s) for s in split]
    if sum(sizes) != n:
        raise ValueError(f"SplitToSequence: split sizes {sizes} do not add up to dim {n}")
    return (list(np.split(x, np.cumsum(sizes)[:-1], axis=axis)),)


def _concat(attrs, seq):
    axis = attrs["axis"]
    if attrs.get("new_axis", 0):
        return (np.stack(seq, axis=axis),)
    return (np.concatenate(seq, axis=axis),)


def _get_element(attrs, x):
    if x is None:
        raise ValueError("OptionalGetElement: the optional is empty")
    return (x,)


OPS = {
    ("", "SequenceEmpty"): lambda attrs: ([],),
    ("", "SequenceConstruct"): lambda attrs, *xs: (list(xs),),
    ("", "SequenceInsert"): _insert,
    ("", "SequenceAt"): lambda attrs, seq, pos: (seq[_index(pos, len(seq))],),
    ("", "SequenceErase"): _erase,
    ("", "SequenceLength"): lambda attrs, seq: (np.array(len(seq), np.int64),),
    ("", "SplitToSequence"): _split,
    ("", "ConcatFromSequence"): _concat,
    ("", "Optional"): lambda attrs, x=None: (x,),
    ("", "OptionalGetElement"): _get_element,
    ("", "OptionalHasElement"): lambda attrs, x=None: (np.array(x is not None),),
}

# Ops compiled on tensors that run here only when they carry a sequence, an
# optional or strings (a module may add some: Equal on strings...).
NON_TENSOR_OPS = {("", "Identity"): lambda attrs, x: (x,)}

MODULES = ("host_strings",)   # sibling modules with an OPS table (and maybe NON_TENSOR_OPS)

HOST_OPS = dict(OPS)
for _name in MODULES:
    try:
        _module = importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as _e:   # not in this checkout
        if _e.name != f"{__package__}.{_name}":
            raise
        continue
    HOST_OPS.update(_module.OPS)
    NON_TENSOR_OPS.update(getattr(_module, "NON_TENSOR_OPS", {}))
