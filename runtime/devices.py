"""Where a compiled graph's arrays live: host memory (numpy) or a CUDA device.

Each specialisation's manifest names its device. The executable asks the
device to place constants once at load, inputs at every call, and to hand
outputs back (copied to numpy unless device outputs were asked for)."""
from __future__ import annotations

import numpy as np


def is_cuda_array(a) -> bool:
    """CuPy, PyTorch and Numba device arrays (and the CUDA simulator's stand-ins)."""
    if isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or _simulated(a)


def as_device_array(a):
    """A Numba device array viewing `a`'s memory, without a copy."""
    if _simulated(a):
        return a
    from numba import cuda
    return cuda.as_cuda_array(a)


def _simulated(a) -> bool:
    return type(a).__module__.startswith("numba.cuda.simulator")


class Host:
    name = "host"

    def place_consts(self, consts):
        return consts

    def place_input(self, a):
        return a

    def finish(self, outs, device_outputs: bool):
        return outs


class Cuda:
    """Weights uploaded once; numpy inputs copied up, CUDA arrays (CuPy, PyTorch,
    Numba device arrays) used in place through __cuda_array_interface__."""
    name = "cuda"

    def __init__(self):
        from numba import cuda
        if not cuda.is_available():
            raise RuntimeError("target 'cuda': no usable CUDA GPU or driver (numba.cuda.is_available() is "
                               "False); set NUMBA_ENABLE_CUDASIM=1 to run on Numba's CUDA simulator")
        self.cuda = cuda

    def place_consts(self, consts):
        return [self.cuda.to_device(c) for c in consts]

    def place_input(self, a):
        if is_cuda_array(a):
            return as_device_array(a)
        return self.cuda.to_device(a)

    def finish(self, outs, device_outputs: bool):
        if device_outputs:
            return outs
        return tuple(o.copy_to_host() for o in outs)


DEVICES = {"host": Host, "cuda": Cuda}
_made: dict = {}


def get(name: str):
    if name not in _made:
        _made[name] = DEVICES[name]()
    return _made[name]
