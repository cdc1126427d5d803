"""Op definitions; importing this package fills compiler.registry.REGISTRY."""
from . import attention, elementwise, indexing, ml, nn, quant, reduce, resize, rnn, shape, text  # noqa: F401
