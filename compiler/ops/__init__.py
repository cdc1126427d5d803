"""Op definitions; importing this package fills compiler.registry.REGISTRY."""
from . import (attention, dynamic, einsum, elementwise, indexing, ml, nn, quant, reduce, resize, rnn,  # noqa: F401
               shape, signal, text, training, vision)
