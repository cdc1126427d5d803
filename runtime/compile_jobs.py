"""A model's first compile, shared with helper processes (make -j for Numba's kernels).

Numba compiles each kernel on its first call, one after another, on one core: light_resnet50's
first call compiled ~28 s of kernels and C callbacks while the second core idled. Before that
call, `prime` runs the graph function's Python code with every kernel call recorded instead of
made, and compiles what the calls need: each (kernel, argument types), after the C callbacks
the kernels link (targets/cpu/kernels/jit.py). Helper processes (`helper`, started by
`import_primed`) prime the same graph at the same time. Each unit is taken under a file lock
(flock: released when its holder finishes, exits or dies): a process compiles the next unit
nobody holds and skips the ones held elsewhere; then it takes the skipped ones as they come
free, which loads them from Numba's disk cache (made safe for concurrent writers by
runtime/numba_cache.py). ONNXJIT_DEBUG_JOBS=1 prints who took what.

Only straight-line graphs are primed (`primable`): the recorded calls never run, so their
outputs hold garbage, and no host code may compute on them."""
from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import types

import numpy as np
from numba.core import types as nbtypes
from numba.core.dispatcher import Dispatcher
from numba.np.numpy_support import as_dtype

from .numba_cache import CAN_LOCK, locked

_state = threading.local()      # .locks: the lock folder while this thread primes; .deferred


def jobs() -> int:
    """Processes that compile a model's first call: ONNXJIT_COMPILE_JOBS, else 2 where this
    process may run on 2 cores or more (a helper costs ~0.5-1 s of imports; more are rarely
    worth it)."""
    if not CAN_LOCK or not sys.executable:      # no flock (Windows), or no interpreter to start (embedded)
        return 1
    env = os.environ.get("ONNXJIT_COMPILE_JOBS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, int(env)) if env else min(2, cores)


# units under locks ------------------------------------------------------------------------
def sharing() -> bool:
    return getattr(_state, "locks", None) is not None


@contextlib.contextmanager
def unit(key: str, wait: bool):
    """Yields True while this process holds unit `key` (always, when not sharing); False if
    another holds it and not `wait`."""
    folder = getattr(_state, "locks", None)
    if folder is None:
        yield True
        return
    path = os.path.join(folder, hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
    with locked(path, wait) as mine:
        _debug(("take " if mine else "skip ") + key)
        yield mine


def _debug(msg):
    if os.environ.get("ONNXJIT_DEBUG_JOBS"):
        print(f"{time.time() % 1000:8.2f} [{os.getpid()}] {msg}", file=sys.stderr)


def defer(bind) -> bool:
    """True, and `bind` (a kernel library's callback binder) is kept for prime to call, while
    this thread primes: a library's callbacks are then compiled as units, not at its import."""
    if not sharing():
        return False
    if bind not in _state.deferred:
        _state.deferred.append(bind)
    return True


@contextlib.contextmanager
def shared(folder: str):
    """Units taken in this thread go through the locks in `folder`; callbacks that libraries
    deferred are bound on the way out, whatever happened."""
    os.makedirs(folder, exist_ok=True)
    _state.locks, _state.deferred = folder, []
    try:
        yield
    finally:
        deferred, _state.locks, _state.deferred = _state.deferred, None, []
        for bind in deferred:
            bind()


# the graph's calls ------------------------------------------------------------------------
_HOST_NAMES = {"np", "math", *dir(builtins)}
_NP_CONSTRUCTORS = {"empty", "zeros", "ones", "full", "float32", "float64", "int64", "int32", "bool_", "uint8"}


def primable(source: str) -> bool:
    """The body of the module's `graph` function is assignments of views, fresh buffers and
    constants, copies between views, calls of kernels whose results are only passed on to
    kernels or returned, and a return: nothing there computes on values."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    fn = next((f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "graph"), None)
    if fn is None:
        return False
    local = {a.arg for a in fn.args.args}      # names of values, never of kernels
    results: set = set()                        # names holding a kernel's result
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target = stmt.targets[0].id
            if _kernel_call(stmt.value, local, results):
                ok = True
                results.add(target)
            else:
                ok = _view(stmt.value) and not _uses(stmt.value, results)
                results.discard(target)
            local.add(target)
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Subscript):
            ok = all(_view(n) and not _uses(n, results) for n in (stmt.targets[0], stmt.value))    # a copy
        elif isinstance(stmt, ast.Expr):
            ok = _kernel_call(stmt.value, local, results)
        elif isinstance(stmt, ast.Return):
            value = stmt.value
            elts = value.elts if isinstance(value, ast.Tuple) else [value] if value else []
            ok = all(isinstance(e, ast.Name) or _view(e) and not _uses(e, results) for e in elts)
        else:
            ok = False
        if not ok:
            return False
    return True


def _kernel_call(node, local: set, results: set) -> bool:
    """A call of a kernel by name, its arguments views or results as they are."""
    return (isinstance(node, ast.Call) and not node.keywords and _callee(node.func) and not _uses(node.func, local)
            and all(isinstance(a, ast.Name) or _view(a) and not _uses(a, results) for a in node.args))


def _uses(node, names: set) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _callee(node) -> bool:
    """A kernel's name, or a kernel library's attribute: not numpy, math or a builtin."""
    if isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id not in _HOST_NAMES


def _constant(node) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _constant(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_constant(e) for e in node.elts)
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"


def _view(node) -> bool:
    """A name, a constant, a tuple of them, a slice, reshape or copy of one, or a fresh numpy buffer."""
    if _constant(node) or isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Tuple):
        return all(_view(e) for e in node.elts)
    if isinstance(node, ast.Subscript):
        index = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return _view(node.value) and all(
            _constant(i) or isinstance(i, ast.Slice) and all(p is None or _constant(p) for p in (i.lower, i.upper, i.step))
            for i in index)
    if isinstance(node, ast.Call) and not node.keywords and isinstance(node.func, ast.Attribute):
        f = node.func
        if isinstance(f.value, ast.Name) and f.value.id == "np":
            return f.attr in _NP_CONSTRUCTORS and all(_constant(a) for a in node.args)
        return f.attr in ("reshape", "view", "copy") and _view(f.value) and all(_constant(a) for a in node.args)
    return False


class _Recorder:
    """Stands for a kernel in the primed graph: records the argument types of each call."""

    def __init__(self, dispatcher, calls: list):
        self.dispatcher, self.calls = dispatcher, calls

    def __call__(self, *args):
        d = self.dispatcher
        sig = tuple(d.typeof_pyval(a.stand_in() if isinstance(a, _Result) else a) for a in args)
        self.calls.append((d, sig))
        return _Result(d, sig)


class _Result:
    """What a recorded call returns. Passed on to another kernel, it becomes an empty array of
    the kernel's return type, which takes compiling that kernel now (its unit, waited for)."""

    def __init__(self, dispatcher, sig):
        self.dispatcher, self.sig = dispatcher, sig

    def stand_in(self):
        d, sig = self.dispatcher, self.sig
        with unit(_unit_key(d, sig), wait=True):
            d.compile(sig)
        rt = d.overloads[sig].signature.return_type
        if not isinstance(rt, nbtypes.Array) or rt.layout != "C":
            raise TypeError(f"no stand-in for a {rt}")
        return np.empty((0,) * rt.ndim, as_dtype(rt.dtype))


class _Library:
    """Stands for a kernel library module in the primed graph."""

    def __init__(self, module, calls: list):
        self._module, self._calls = module, calls

    def __getattr__(self, name):
        value = getattr(self._module, name)
        return _Recorder(value, self._calls) if _is_dispatcher(value) else value


def _is_dispatcher(value) -> bool:
    return isinstance(value, Dispatcher)


def record(graph, args) -> list:
    """The (dispatcher, argument types) of the graph's kernel calls, first use of each, in
    order; up to the first error, if the Python code fails on a call's missing result."""
    fn = getattr(graph, "py_func", graph)
    calls: list = []
    env = dict(fn.__globals__)
    for name, value in fn.__globals__.items():
        if _is_dispatcher(value):
            env[name] = _Recorder(value, calls)
        elif isinstance(value, types.ModuleType) and any(_is_dispatcher(v) for v in vars(value).values()):
            env[name] = _Library(value, calls)
    try:
        types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)(*args)
    except Exception:   # noqa: BLE001 -- the first call will raise it for real
        pass
    seen, out = set(), []
    for d, sig in calls:
        if (id(d), sig) not in seen:
            seen.add((id(d), sig))
            out.append((d, sig))
    return out


def prime(graph, args) -> dict:
    """Compiles what the graph's first call would, sharing the units with the other processes
    priming it; returns counts: units, compiled here, taken after another process."""
    for bind in list(getattr(_state, "deferred", ())):    # the callbacks first: kernels link them
        bind()
    calls = record(graph, args)
    done, skipped = 0, []
    for d, sig in calls:
        if sig in d.overloads:
            continue
        with unit(_unit_key(d, sig), wait=False) as mine:
            if mine:
                done += _compile(d, sig)
            else:
                skipped.append((d, sig))
    for d, sig in skipped:
        with unit(_unit_key(d, sig), wait=True):
            _compile(d, sig)
    return {"units": len(calls), "compiled_here": done, "waited": len(skipped)}


def _compile(dispatcher, sig) -> int:
    try:
        dispatcher.compile(sig)
    except Exception:   # noqa: BLE001 -- the graph's first call compiles it again and raises
        return 0
    return 1


def _unit_key(dispatcher, sig) -> str:
    fn = dispatcher.py_func
    return f"kernel {fn.__module__} {fn.__qualname__} {sig}"


# the processes ----------------------------------------------------------------------------
def import_primed(cache, key: str, spec: str, manifest: dict, inputs: list, consts: list, arenas, jobs: int):
    """The graph of a specialisation just built and stored, imported with what its first call
    compiles done by this process and jobs - 1 helpers side by side, where it is primable;
    (graph, prime's counts or None). inputs: the graph's input arrays as it takes them."""
    with open(os.path.join(cache.src, manifest["module"] + ".py")) as f:
        if not primable(f.read()):
            return cache.import_graph(manifest), None
    folder = _lock_folder(cache.root, key, spec)
    kinds = [(a.dtype.str, list(a.shape)) for a in inputs]
    helpers = _start(helper_command(cache.root, key, spec, kinds), jobs - 1)
    try:
        with shared(folder):
            graph = cache.import_graph(manifest)
            arena = arenas.take() if arenas else ()
            try:
                return graph, prime(graph, [*inputs, *consts, *arena])
            finally:
                if arenas:
                    arenas.give(arena)
    finally:
        for p in helpers:       # every unit is compiled and cached by now: what is left is loads
            p.terminate()
        for p in helpers:
            p.wait()
        shutil.rmtree(folder, ignore_errors=True)


def helper_command(cache_root: str, key: str, spec: str, arg_kinds: list) -> list:
    """The command line of a helper priming the cached specialisation (key, spec); arg_kinds:
    (dtype, shape) of the graph's inputs in order."""
    job = json.dumps({"root": cache_root, "key": key, "spec": spec, "args": arg_kinds})
    return [sys.executable, "-c", "import sys, runtime.compile_jobs as j; j.helper(sys.argv[1])", job]


def _start(command: list, count: int) -> list:
    """`count` processes running `command`, quiet unless ONNXJIT_DEBUG_JOBS is set."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    quiet = subprocess.DEVNULL if not os.environ.get("ONNXJIT_DEBUG_JOBS") else None
    helpers = []
    for _ in range(count):
        try:
            helpers.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=quiet, stderr=quiet))
        except OSError:     # no process to spare: this one compiles alone
            break
    return helpers


def _lock_folder(cache_root: str, key: str, spec: str) -> str:
    return os.path.join(cache_root, "locks", key, spec)


def helper(job: str):
    """A helper process's work: prime the specialisation `job` names (helper_command)."""
    from .arena import Arenas
    from .cache import Cache
    job = json.loads(job)
    cache = Cache(job["root"])
    entry = cache.lookup(job["key"], job["spec"])
    if entry is None:
        return
    manifest, consts = entry
    args = [np.zeros(shape, dtype) for dtype, shape in job["args"]] + list(consts)
    if manifest.get("arena"):
        args += list(Arenas(manifest["arena"]).take())
    with shared(_lock_folder(job["root"], job["key"], job["spec"])):
        graph = cache.import_graph(manifest)
        got = prime(graph, args)
    _debug(f"helper done: {got}")
