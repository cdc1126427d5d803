"""Fused elementwise groups -> one loop-nest kernel.

Same-shape groups run as one flat loop; broadcasting groups as a loop nest over
the output with the broadcast dims of each input indexed at 0. Sizes come from
the arrays at run time, so one kernel text serves every shape of its rank.
Small floats and integers (float16, bfloat16, float8, float4, int4, int2: bits,
see targets/cpu/half.py) are widened to float32 on load; each such result is
rounded to its type, as a tensor of that type would hold it."""
from __future__ import annotations

import numpy as np

from compiler.dtypes import is_held

from . import half, scalar, source
from .emitter import NJIT, NJIT_PARALLEL, Emitter

PARALLEL_MIN_SIZE = 1 << 18     # below this a prange's fork costs more than it saves


def body_lines(group, flat: bool, render=scalar.render) -> list[str]:
    """Loads, one line per fused op, and the store, for the point `i` (flat) or
    (i0, ..., i{rank-1}); `render` gives the target's scalar expressions."""
    out = group.outputs[0]
    ext = group.inputs
    rank = len(out.shape)
    names = {v: f"x{i}" for i, v in enumerate(ext)}
    if flat:
        lines = [f"x{i} = {_load(v, f'a{i}', 'i' if v.size == out.size else '0')}" for i, v in enumerate(ext)]
        store = "out[i]"
    else:
        lines = []
        for i, v in enumerate(ext):
            shape = (1,) * (rank - len(v.shape)) + tuple(v.shape)
            idx = ", ".join("0" if shape[d] == 1 and out.shape[d] != 1 else f"i{d}" for d in range(rank))
            lines.append(f"x{i} = {_load(v, f'a{i}', idx)}")
        store = f"out[{', '.join(f'i{d}' for d in range(rank))}]"
    for k, node in enumerate(group.attrs["body"]):
        args_ = [names[v] for v in node.inputs if v is not None]
        dts = [np.dtype(np.float32) if is_held(v.dtype) else v.dtype for v in node.inputs if v is not None]
        expr = render(node, args_, dts)
        o = node.outputs[0]
        names[o] = f"t{k}"
        if not is_held(o.dtype):
            expr = f"{source.dtype_name(o.dtype)}({expr})"
        elif o is not out:
            expr = f"L_half.round_trip({expr}, {half.code(o.dtype)}, {half.mode(node)})"
        lines.append(f"t{k} = {expr}")     # a small-float output is narrowed once, by the store
    value = names[out]
    if is_held(out.dtype):
        value = f"L_half.narrow({value}, {half.code(out.dtype)}, {half.mode(group.attrs['body'][-1])})"
    lines.append(f"{store} = {value}")
    return lines


def _load(v, array, idx) -> str:
    if is_held(v.dtype):
        return f"L_half.widen({array}[{idx}], {half.code(v.dtype)})"
    return f"{array}[{idx}]"


def kernel_args(group) -> str:
    return ", ".join(["out"] + [f"a{i}" for i in range(len(group.inputs))])


def kernel_text(group, flat: bool, parallel: bool) -> str:
    rank = len(group.outputs[0].shape)
    lines = [NJIT_PARALLEL if parallel else NJIT, f"def KERNEL({kernel_args(group)}):"]
    rng = "prange" if parallel else "range"
    if flat:     # the arrays come flattened
        lines.append(f"    for i in {rng}(out.size):")
        pad = "        "
    else:
        pad = "    "
        for d in range(rank):
            lines.append(f"{pad}for i{d} in {rng if d == 0 else 'range'}(out.shape[{d}]):")
            pad += "    "
    lines += [pad + line for line in body_lines(group, flat)]
    return "\n".join(lines)


def kernel_call_args(group, flat: bool, res: str, em) -> list[str]:
    """The output and inputs as the kernel takes them: flattened, or of the
    output's rank with size-1 dims in front."""
    rank = len(group.outputs[0].shape)
    args = [f"{res}.reshape({group.outputs[0].size})" if flat else res]
    for v in group.inputs:
        if flat:
            args.append(f"{em[v]}.reshape({v.size})")
        else:
            args.append(f"{em[v]}.reshape({source.ints((1,) * (rank - len(v.shape)) + tuple(v.shape))})"
                        if len(v.shape) != rank else em[v])
    return args


def lower_fused(group, em: Emitter):
    out = group.outputs[0]
    flat = all(v.shape == out.shape or v.size == 1 for v in group.inputs)
    parallel = out.size >= PARALLEL_MIN_SIZE and (flat or out.shape[0] > 1)
    text = kernel_text(group, flat, parallel)
    for lib in ("scalar", "half"):
        if f"L_{lib}." in text:
            em.lib(lib)
    k = em.kernel(text)
    res = em.alloc(out)
    em.emit(f"{k}({', '.join(kernel_call_args(group, flat, res, em))})")
