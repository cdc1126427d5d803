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

PARALLEL_MIN_WORK = 1 << 16     # element-ops (~60 us): below this waking a thread (~5 us) saves little
HEAVY_OPS = {"Erf", "Tanh", "Exp", "Log", "Sigmoid", "Gelu", "Pow", "Softplus", "Mish", "Swish", "Elu", "Selu",
             "Celu", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "HardSwish"}
HEAVY_COST = 8                  # a libm-class op against an add (a 2-thread split of 32768 GELUs saves 0.25 ms)


def loop_shapes(group) -> tuple[tuple, list[tuple]]:
    """The loop nest of a broadcasting group: the output's shape and each input's
    (1 where it broadcasts), with size-1 output dims dropped and neighbouring dims
    merged where every input broadcasts the same way. (1, 128, 768) + (768,) becomes
    (128, 768) + (1, 768): fewer loops, and the first one long enough to split."""
    out = group.outputs[0].shape
    rank = len(out)
    padded = [(1,) * (rank - len(v.shape)) + tuple(v.shape) for v in group.inputs]
    dims, pattern = [], None
    for d in range(rank):
        if out[d] == 1:
            continue
        p = tuple(s[d] == 1 for s in padded)
        if p == pattern:
            dims[-1][0] *= out[d]
        else:
            dims.append([out[d], p])
            pattern = p
    out_shape = tuple(n for n, _ in dims)
    return out_shape, [tuple(1 if p[i] else n for n, p in dims) for i in range(len(padded))]


def work(group) -> int:
    """Element-ops of the group: its size times a cost per element."""
    body = group.attrs["body"]
    return group.outputs[0].size * (1 + sum(HEAVY_COST if n.op in HEAVY_OPS else 1 for n in body))


def body_lines(group, flat: bool, render=scalar.render) -> list[str]:
    """Loads, one line per fused op, and the store, for the point `i` (flat) or
    (i0, ..., i{rank-1}); `render` gives the target's scalar expressions."""
    out = group.outputs[0]
    ext = group.inputs
    names = {v: f"x{i}" for i, v in enumerate(ext)}
    if flat:
        lines = [f"x{i} = {_load(v, f'a{i}', 'i' if v.size == out.size else '0')}" for i, v in enumerate(ext)]
        store = "out[i]"
    else:
        out_shape, shapes = loop_shapes(group)
        rank = len(out_shape)
        lines = []
        for i, (v, shape) in enumerate(zip(ext, shapes)):
            idx = ", ".join("0" if shape[d] == 1 and out_shape[d] != 1 else f"i{d}" for d in range(rank))
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
    rank = 1 if flat else len(loop_shapes(group)[0])
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
    """The output and inputs as the kernel takes them: flattened, or reshaped to
    the merged loop nest of loop_shapes."""
    if flat:
        return [f"{res}.reshape({group.outputs[0].size})"] + [f"{em[v]}.reshape({v.size})" for v in group.inputs]
    out_shape, shapes = loop_shapes(group)
    return [f"{res}.reshape({source.ints(out_shape)})"] + [
        f"{em[v]}.reshape({source.ints(shape)})" for v, shape in zip(group.inputs, shapes)]


def lower_fused(group, em: Emitter):
    out = group.outputs[0]
    flat = all(v.shape == out.shape or v.size == 1 for v in group.inputs)
    parallel = (em.threads > 1 and work(group) >= PARALLEL_MIN_WORK
                and (flat or loop_shapes(group)[0][0] >= em.threads))
    text = kernel_text(group, flat, parallel)
    for lib in ("scalar", "half"):
        if f"L_{lib}." in text:
            em.lib(lib)
    k = em.kernel(text)
    res = em.alloc(out)
    em.emit(f"{k}({', '.join(kernel_call_args(group, flat, res, em))})")
