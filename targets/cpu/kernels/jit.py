"""numba.njit for the kernel libraries, typing constant arguments by their type, not their value.

A kernel called from compiled code with a constant (`fill_phases(x, n, 0, ...)`, a layout
flag written into a jitted graph) gets Numba's literal type for it, `Literal[int](0)`, and
Numba compiles a specialisation for that value beside the int64 one, with everything it
calls: on an empty cache, mobilenetv2_half compiled conv_gemm, _phase_planes, _same_planes,
_dw_range, _unfold, fill_phases and nine more twice, ~30 s of its 178 s. The kernels never
branch on a constant's value at typing time, so callers' literals are widened here.

And the C callbacks (`callback`): kernels called by symbol, compiled once. A model's library
copies (top-level modules, hash-named, in the cache) compile and bind theirs at import: a
cached graph links the symbol. The package's modules (targets.cpu.kernels) only register
theirs, bound before the first compile or cache load of a kernel that may call one: compile()
imports the package for its planning helpers (filter packing, tiling, workspace sizes), marked
`callbacks=False`, and then imports the model's copies. Compiling each callback twice in one
process cost light_resnet50's cold compile ~12 s of 36 (conv_small 7 s, sgemm 4-5 s) on Zen 4."""
import threading

import llvmlite.binding as ll
import runtime  # noqa: F401 (its Numba cache patch, runtime/numba_cache.py, before any kernel is saved)
from numba import cfunc
from numba import njit as _numba_njit
from numba.core.types import unliteral

LAZY = bool(__package__)    # this is the package's module: its callbacks compile on demand
_pending = []               # (symbol, signature, function, options), in registration order
_lock = threading.RLock()
_binding = False


def callback(symbol: str, signature, **options):
    """cfunc(signature, cache=True, **options) bound to `symbol`, for code calling it as
    types.ExternalFunction(symbol, signature); compiled now, or where LAZY when bind() runs.
    A callback registered after another may call it."""
    def register(fn):
        _pending.append((symbol, signature, fn, options))
        if not LAZY:
            bind()
        return fn
    return register


def bind():
    """Compile and bind every registered callback (not again while one is compiling: the
    helpers it calls need none bound, and a later callback may need it)."""
    global _binding
    with _lock:
        if _binding:
            return
        _binding = True
        try:
            while _pending:
                symbol, signature, fn, options = _pending[0]
                ll.add_symbol(symbol, cfunc(signature, cache=True, **options)(fn).address)
                _pending.pop(0)
        finally:
            _binding = False


def njit(*args, callbacks=True, **options):
    """numba.njit(...) whose dispatcher types each call with unliteral argument types.
    callbacks=False declares that the function calls no callback, directly or through what it
    calls: compiling it binds none (the planning helpers compile() calls)."""
    if args and callable(args[0]):
        return _widened(_numba_njit(args[0], **options), callbacks)
    return lambda fn: _widened(_numba_njit(*args, **options)(fn), callbacks)


def _widened(dispatcher, callbacks):
    call_template, compile_sig = dispatcher.get_call_template, dispatcher.compile

    def get_call_template(args, kws):
        return call_template(tuple(unliteral(a) for a in args), {k: unliteral(v) for k, v in kws.items()})

    def compile_bound(sig):
        if _pending:
            bind()
        return compile_sig(sig)

    dispatcher.get_call_template = get_call_template
    if callbacks and LAZY:
        dispatcher.compile = compile_bound
    return dispatcher
