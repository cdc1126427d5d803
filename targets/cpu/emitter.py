"""Collects the generated module: helper kernels, the graph function's lines,
constant arguments and library imports. Lowerings talk to it only."""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np

from compiler.dtypes import HELD_AS_BITS

from . import memplan, source

KERNEL_DIR = os.path.join(os.path.dirname(__file__), "kernels")
NJIT = "@njit(cache=True, error_model='numpy')"
NJIT_PARALLEL = "@njit(cache=True, error_model='numpy', parallel=True)"
GRAPH_JIT_MAX_LINES = 64   # graph functions up to this many lines are @njit (see Emitter.jit_graph)
# ...unless they call these libraries: their kernels are big (a jitted resnet18_half graph took
# 134 s to compile, 50 s as Python) and run long enough that a Python caller costs nothing.
GRAPH_JIT_NEVER_WITH = {"nn", "winograd"}
# A CNN whose convs all run on the kernels kept behind C callbacks (linked by symbol, so the graph's
# compile does not take their code in again) or small ones, nn's only its pooling and squeeze-excite
# products, is @njit up to GRAPH_JIT_CNN_MAX_LINES lines: a Python caller costs ~1-1.5 us a call
# (views, dispatch), and such models run many short layers. Interleaved in one process, Python
# graph against @njit, ms: mobilenetv2_half (114 lines) 3.01 -> 2.93 at 1 thread, 1.81 -> 1.67 at
# 2; se_cnn (68) 0.840 -> 0.783, 0.584 -> 0.538; their cold compiles 36 -> 46 s and 38 -> 47.
# (resnet18_half, whose Winograd convs run long, stays Python: 8.96 -> 8.79 ms, 22 -> 27 s.)
GRAPH_JIT_CALLBACK_LIBS = {"conv_small", "conv_lanes", "dw_small", "window3x3", "maxpool3x3", "pointwise", "linalg"}
GRAPH_JIT_LIGHT_NN = {"global_pool", "conv_gemv"}
GRAPH_JIT_CNN_MAX_LINES = 256
_SIBLING = re.compile(r"^from \.(\w+) import", re.M)   # a kernel library importing another


class Emitter:
    """The CPU flavour; targets.cuda subclasses it and changes these class attributes."""
    KERNEL_DIR = KERNEL_DIR
    LIB_PREFIX = "onnxjit_lib_"
    KERNEL_PREFIX = "onnxjit_k_"
    HEADER = ("import math", "import numpy as np", "from numba import njit, prange")
    GRAPH_DECORATOR = NJIT
    EMPTY = "np.empty"
    threads = 1             # kernels may split work into this many parts (compile()'s threads=)
    MEMORY_PLAN = True      # its np.empty buffers may become views of one arena (targets/cpu/memplan.py)

    def __init__(self):
        self.lines: list[str] = []
        self.kernels: dict[str, str] = {}      # kernel text -> its name (dedup by text)
        self.consts: list[np.ndarray] = []
        self.const_names: dict[int, str] = {}  # id(array) -> arg name
        self.names: dict = {}                  # Value -> variable name
        self.libs: set[str] = set()
        self.aliases: set = set()              # values that may share memory with an input/const
        self.widened: dict = {}                # small-float value -> its float32 copy (targets/cpu/half.py)
        self.arena = None                      # the arena it takes, if planned (targets/cpu/memplan.py)
        self._tmp = 0

    # values -------------------------------------------------------------
    def bind_input(self, value, index: int) -> str:
        self.names[value] = f"x{index}"
        self.aliases.add(value)
        return self.names[value]

    def __getitem__(self, value) -> str:
        """The variable holding `value`: a computed temp, an input or a constant argument."""
        if value in self.names:
            return self.names[value]
        if value.const is not None:
            self.names[value] = self.const(value.const)
            self.aliases.add(value)
            return self.names[value]
        raise KeyError(f"value {value!r} used before it is computed")

    def const(self, array) -> str:
        """A constant travels as an argument of the graph function, never as text."""
        array = np.require(array, requirements="C")
        if array.dtype in HELD_AS_BITS:
            array = array.view(HELD_AS_BITS[array.dtype])
        key = id(array)
        if key not in self.const_names:
            self.const_names[key] = f"c{len(self.consts)}"
            self.consts.append(array)
        return self.const_names[key]

    def bind_const(self, value, array) -> str:
        """`value` is the constant `array` (an argument, never text)."""
        self.names[value] = self.const(array)
        self.aliases.add(value)
        return self.names[value]

    def tmp(self) -> str:
        self._tmp += 1
        return f"t{self._tmp}"

    def define(self, value, expr: str, alias: bool = False) -> str:
        name = f"v{len(self.names)}"
        self.names[value] = name
        self.emit(f"{name} = {expr}")
        if alias:
            self.aliases.add(value)
        return name

    def alloc(self, value) -> str:
        """A fresh output buffer for `value`, shaped as the IR says."""
        return self.define(value, self.empty(value.shape, value.dtype))

    def empty(self, shape, dtype) -> str:
        """The expression allocating an uninitialised array."""
        return f"{self.EMPTY}({source.ints(shape)}, {source.dtype_name(dtype)})"

    def emit(self, line: str):
        self.lines.append(line)

    # code ---------------------------------------------------------------
    def lib(self, name: str) -> str:
        """Use the hand-written kernel module targets/cpu/kernels/<name>.py."""
        if not os.path.exists(os.path.join(self.KERNEL_DIR, name + ".py")):
            raise NotImplementedError(f"this target has no kernel library {name!r} yet")
        self.libs.add(name)
        return f"L_{name}"

    def loop_kernel(self, args: str, space: str, rank: int, body: list[str]) -> str:
        """A kernel running `body` once per index (i0, ..., i{rank-1}) of array `space`'s shape."""
        lines = [NJIT, f"def KERNEL({args}):"]
        pad = "    "
        for d in range(rank):
            lines.append(f"{pad}for i{d} in range({space}.shape[{d}]):")
            pad += "    "
        lines += [pad + line for line in body]
        return self.kernel("\n".join(lines))

    def launch(self, kernel: str, size: int, args: list[str]):
        """Call a loop kernel whose index space has `size` points."""
        self.emit(f"{kernel}({', '.join(args)})")

    def copy_expr(self, name: str) -> str:
        return f"{name}.copy()"

    def kernel(self, text: str) -> str:
        """Add a generated function (its def line uses the name KERNEL); same text, same function."""
        if text not in self.kernels:
            self.kernels[text] = f"k{len(self.kernels)}"
        return self.kernels[text]

    # the module ------------------------------------------------------------
    def module(self, n_inputs: int, outputs: list[str]) -> tuple[str, dict]:
        """(source of the graph module, {module name: source} of the libraries and kernels it imports).

        Each kernel is its own module named by the hash of its text, so Numba's
        disk cache of a kernel is shared by every model and specialisation that
        generates the same text: it compiles once per cache directory."""
        mods, lib_imports, lib_mods = {}, {}, {}
        for name in sorted(self.libs):
            mod = self._library(name, mods, lib_mods)
            lib_imports[name] = f"import {mod} as L_{name}"
            self._check_library(name, mods[mod])
        head = ["# generated by onnxjit: readable on purpose, do not edit", *self.HEADER]
        imports = [lib_imports[n] for n in sorted(self.libs)]
        for text, name in self.kernels.items():
            used = [line for n, line in sorted(lib_imports.items()) if f"L_{n}." in text]
            src = "\n".join(head + used + ["", "", text.replace("KERNEL", "kernel")]) + "\n"
            mod = f"{self.KERNEL_PREFIX}{_digest(src)}"
            mods[mod] = src
            imports.append(f"from {mod} import kernel as {name}")
        args = [f"x{i}" for i in range(n_inputs)] + [f"c{i}" for i in range(len(self.consts))]
        args += memplan.arguments(self.arena)
        graph = ["", ""] + ([self.GRAPH_DECORATOR] if self.jit_graph() else []) + [f"def graph({', '.join(args)}):"]
        graph += ["    " + line for line in self.lines]
        graph.append(f"    return ({', '.join(outputs)}{',' if len(outputs) == 1 else ''})")
        return "\n".join(head + imports + graph) + "\n", mods

    def _library(self, name: str, mods: dict, done: dict) -> str:
        """Module name of kernel library `name`, added to `mods` with the libraries it imports.

        A library may import a sibling as `from .other import f`; the copy rewrites that to
        the sibling's hash-named module, so a change in the sibling renames both."""
        if name not in done:
            with open(os.path.join(self.KERNEL_DIR, name + ".py")) as f:
                text = f.read()
            text = _SIBLING.sub(lambda m: f"from {self._library(m.group(1), mods, done)} import", text)
            done[name] = f"{self.LIB_PREFIX}{name}_{_digest(text)}"
            mods[done[name]] = text
        return done[name]

    def _check_library(self, name: str, text: str):
        """Every function the code calls in library `name` exists there: a target whose
        library lacks one refuses at compile time, not with an AttributeError at run time."""
        used = set(re.findall(rf"\bL_{name}\.(\w+)", "\n".join([*self.lines, *self.kernels])))
        defined = {a or b for a, b in re.findall(r"^(?:def +(\w+)|(\w+) *=)", text, re.M)}
        for names in re.findall(r"^from \S+ import ([\w, ]+)", text, re.M):
            defined.update(n.strip() for n in names.split(","))
        missing = sorted(used - defined)
        if missing:
            raise NotImplementedError(f"this target's kernel library {name!r} has no {', '.join(missing)} yet")

    def jit_graph(self) -> bool:
        """One native call per inference pays on small graphs; on big ones Numba's
        compile of the graph function (linear in its calls, every kernel linked in
        and re-optimised) costs far more than the few µs per op a Python caller adds."""
        if not self.GRAPH_DECORATOR:
            return False
        mode = os.environ.get("ONNXJIT_GRAPH_JIT", "auto")
        if mode in ("0", "1"):
            return mode == "1"
        if len(self.lines) <= GRAPH_JIT_MAX_LINES and not self.libs & GRAPH_JIT_NEVER_WITH:
            return True
        nn_calls = set(re.findall(r"\bL_nn\.(\w+)", "\n".join([*self.lines, *self.kernels])))
        return (len(self.lines) <= GRAPH_JIT_CNN_MAX_LINES and bool(self.libs & GRAPH_JIT_CALLBACK_LIBS)
                and self.libs <= GRAPH_JIT_CALLBACK_LIBS | {"nn"} and nn_calls <= GRAPH_JIT_LIGHT_NN)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
