"""Op definitions; importing this package fills compiler.registry.REGISTRY."""
from . import elementwise, indexing, nn, reduce, resize, rnn, shape  # noqa: F401
