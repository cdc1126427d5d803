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
process cost light_resnet50's cold compile ~12 s of 36 (conv_small 7 s, sgemm 4-5 s) on Zen 4.
While processes share a model's first compile (runtime/compile_jobs.py), the copies defer
theirs too: each callback is then a unit one process compiles and the others load."""
import threading
import types as pytypes

import llvmlite.binding as ll
import runtime  # noqa: F401 (its Numba cache patch, runtime/numba_cache.py, before any kernel is saved)
from numba import cfunc
from numba import njit as _numba_njit
from numba.core.types import ExternalFunction, unliteral
from runtime import compile_jobs

LAZY = bool(__package__)    # this is the package's module: its callbacks compile on demand
_pending = []               # (symbol, signature, function, options), in registration order
_lock = threading.RLock()
_bound = set()              # symbols bound by this module
_binding = False


def callback(symbol: str, signature, **options):
    """cfunc(signature, cache=True, **options) bound to `symbol`, for code calling it as
    types.ExternalFunction(symbol, signature); compiled now, or where LAZY when bind() runs.
    A callback registered after another may call it."""
    def register(fn):
        _pending.append((symbol, signature, fn, options))
        if not LAZY and not compile_jobs.defer(bind):
            bind()
        return fn
    return register


def bind():
    """Compile and bind every registered callback (not again while one is compiling: the
    helpers it calls need none bound, and a later callback may need it).

    While processes share a model's first compile (runtime/compile_jobs.py), each callback is
    a unit: this process compiles those nobody holds whose callees are bound here, and then
    loads the others from the disk cache in order. Binding before the callees would be fatal:
    LLVM aborts the process on the next compile if a symbol is unresolved."""
    global _binding
    with _lock:
        if _binding:
            return
        _binding = True
        try:
            if compile_jobs.sharing():
                _bind_shared()
            while _pending:
                _bind_first()
        finally:
            _binding = False


def _bind_first():
    with compile_jobs.unit("callback " + _pending[0][0], wait=True):
        _compile_and_bind(_pending[0])


def _bind_shared():
    """Compiles and binds the pending callbacks that no other process holds and whose callees
    are bound; the rest stay pending."""
    registered = {p[0] for p in _pending} | _bound
    for item in list(_pending):
        symbol, _, fn, _ = item
        if not (_callees(fn, registered) - {symbol}) <= _bound:
            continue
        with compile_jobs.unit("callback " + symbol, wait=False) as mine:
            if mine:
                _compile_and_bind(item)


def _compile_and_bind(item):
    symbol, signature, fn, options = item
    ll.add_symbol(symbol, cfunc(signature, cache=True, **options)(fn).address)
    _bound.add(symbol)
    _pending.remove(item)


def _callees(fn, registered: set, seen=None) -> set:
    """The registered callback symbols `fn` may call: the ExternalFunctions among the globals
    its code names (nested code and closures too), through the njit functions it names."""
    seen = set() if seen is None else seen
    fn = getattr(fn, "py_func", fn)
    if not isinstance(fn, pytypes.FunctionType) or fn in seen:
        return set()
    seen.add(fn)
    names, codes = set(), [fn.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, pytypes.CodeType)]
    values = [fn.__globals__.get(n) for n in names] + [c.cell_contents for c in fn.__closure__ or ()]
    found = set()
    for v in values:
        if isinstance(v, ExternalFunction):
            found |= {v.symbol} & registered
        elif callable(v):
            found |= _callees(v, registered, seen)
    return found


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
    if callbacks:   # a library copy's callbacks are pending only while compile_jobs defers them
        dispatcher.compile = compile_bound
    return dispatcher
