"""Op definitions; importing this package fills compiler.registry.REGISTRY."""
from . import dynamic, einsum, elementwise, indexing, ml, nn, quant, reduce, resize, rnn, shape, signal, training  # noqa: F401
