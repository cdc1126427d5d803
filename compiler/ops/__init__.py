"""Op definitions; importing this package fills compiler.registry.REGISTRY."""
from . import elementwise, indexing, nn, reduce, resize, shape  # noqa: F401
