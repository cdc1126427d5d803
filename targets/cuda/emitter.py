"""The CUDA flavour of the emitter: device allocations, grid-stride loop
kernels, launches with a configuration from kernels/launch.py."""
from __future__ import annotations

import os

from targets.cpu.emitter import Emitter

CUDA_JIT = "@cuda.jit(cache=True)"


class CudaEmitter(Emitter):
    KERNEL_DIR = os.path.join(os.path.dirname(__file__), "kernels")
    LIB_PREFIX = "onnxjit_cudalib_"
    KERNEL_PREFIX = "onnxjit_cudak_"
    HEADER = ("import math", "import numpy as np", "from numba import cuda")
    GRAPH_DECORATOR = None          # the graph function runs on the host
    EMPTY = "cuda.device_array"
    MEMORY_PLAN = False     # device buffers are not planned (yet)

    def __init__(self):
        super().__init__()
        self.lib_alias: dict = {}    # set by a lowering whose CPU library is split differently here

    def lib(self, name: str) -> str:
        return super().lib(self.lib_alias.get(name, name))

    def loop_kernel(self, args: str, space: str, rank: int, body: list[str]) -> str:
        """One thread per index of `space`'s shape (grid-stride), decomposed into i0, ..."""
        lines = [CUDA_JIT, f"def KERNEL({args}):",
                 f"    for i in range(cuda.grid(1), {space}.size, cuda.gridsize(1)):"]
        pad = "        "
        if rank:
            lines.append(f"{pad}r = i")
        for d in reversed(range(rank)):
            if d:
                lines += [f"{pad}i{d} = r % {space}.shape[{d}]", f"{pad}r //= {space}.shape[{d}]"]
            else:
                lines.append(f"{pad}i0 = r")
        lines += [pad + line for line in body]
        return self.kernel("\n".join(lines))

    def flat_kernel(self, args: str, body: list[str]) -> str:
        """One thread per element `i` of the 1-D array `out`."""
        lines = [CUDA_JIT, f"def KERNEL({args}):",
                 "    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):"]
        return self.kernel("\n".join(lines + ["        " + line for line in body]))

    def launch(self, kernel: str, size: int, args: list[str]):
        if size == 0:
            return
        L = self.lib("launch")
        self.emit(f"{kernel}[{L}.blocks({int(size)}), {L}.THREADS]({', '.join(args)})")

    def copy_expr(self, name: str) -> str:
        return f"{self.lib('launch')}.copy({name})"
