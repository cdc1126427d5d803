"""The CUDA target: IR -> one Python module of @cuda.jit kernels and a host
graph function that launches them on device arrays.

The CPU lowerings are reused wherever they only call kernel libraries: the
CUDA libraries in targets/cuda/kernels mirror the CPU libraries' names and
arguments. targets/cuda/lower.py overrides the lowerings that use host numpy."""
from __future__ import annotations

from targets.cpu import build_program

from . import lower, scalar
from .emitter import CudaEmitter

NAME = "cuda"


def build(graph, options: dict) -> dict:
    program = build_program(graph, options, lower.LOWER, CudaEmitter(), scalar.supports, NAME)
    program["device"] = "cuda"
    return program
