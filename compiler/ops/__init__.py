"""Op definitions; importing this package fills compiler.registry.REGISTRY."""
from . import elementwise, indexing, ml, nn, quant, reduce, resize, rnn, shape, vision  # noqa: F401
