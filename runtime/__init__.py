"""The onnxjit runtime: loads generated code from the cache and calls it.
It imports neither compiler, targets nor onnx, so an AOT artifact runs with
only this package, numpy and numba installed."""
from . import threads  # noqa: F401 (first: its OpenMP spin setting must precede Numba's pool)
from . import numba_cache
from .cache import Cache, default_dir, model_key
from .executable import CompiledModel, InputError
from .plan import PlanModel

numba_cache.install()   # before any kernel saves to a cache another process may share

__all__ = ["Cache", "CompiledModel", "InputError", "PlanModel", "default_dir", "model_key"]
