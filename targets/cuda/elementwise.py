"""Fused elementwise groups -> one grid-stride CUDA kernel (same body as the
CPU kernel, scalar expressions in the CUDA dialect)."""
from __future__ import annotations

from compiler.dtypes import is_held
from targets.cpu.elementwise import body_lines, kernel_args, kernel_call_args, loop_shapes

from . import scalar


def lower_fused(group, em):
    out = group.outputs[0]
    if any(is_held(v.dtype) for v in group.inputs + group.outputs):
        raise NotImplementedError("float16/bfloat16/float8/4-bit/2-bit tensors are not supported on cuda yet")
    flat = len(out.shape) == 0 or all(v.shape == out.shape or v.size == 1 for v in group.inputs)
    body = body_lines(group, flat, scalar.render)
    if flat:
        k = em.flat_kernel(kernel_args(group), body)
    else:
        k = em.loop_kernel(kernel_args(group), "out", len(loop_shapes(group)[0]), body)
    if any("L_scalar." in line for line in body):
        em.lib("scalar")
    res = em.alloc(out)
    em.launch(k, out.size, kernel_call_args(group, flat, res, em))
