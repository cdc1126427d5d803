"""onnxjit's compiler: ONNX -> IR -> passes -> target code."""
from .driver import compile, lower_to_ir  # noqa: F401
from .frontend import CompileError, UnsupportedModel  # noqa: F401
