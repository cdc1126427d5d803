"""numba.njit for the kernel libraries, typing constant arguments by their type, not their value.

A kernel called from compiled code with a constant (`fill_phases(x, n, 0, ...)`, a layout
flag written into a jitted graph) gets Numba's literal type for it, `Literal[int](0)`, and
Numba compiles a specialisation for that value beside the int64 one, with everything it
calls: on an empty cache, mobilenetv2_half compiled conv_gemm, _phase_planes, _same_planes,
_dw_range, _unfold, fill_phases and nine more twice, ~30 s of its 178 s. The kernels never
branch on a constant's value at typing time, so callers' literals are widened here."""
import runtime  # noqa: F401 (its Numba cache patch, runtime/numba_cache.py, before any kernel is saved)
from numba import njit as _numba_njit
from numba.core.types import unliteral


def njit(*args, **options):
    """numba.njit(...) whose dispatcher types each call with unliteral argument types."""
    if args and callable(args[0]):
        return _widened(_numba_njit(args[0], **options))
    return lambda fn: _widened(_numba_njit(*args, **options)(fn))


def _widened(dispatcher):
    call_template = dispatcher.get_call_template

    def get_call_template(args, kws):
        return call_template(tuple(unliteral(a) for a in args), {k: unliteral(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template
    return dispatcher
