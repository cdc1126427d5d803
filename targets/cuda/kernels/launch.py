"""Launch configuration and device-array helpers for generated CUDA code.

On a GPU, enough blocks of 256 threads to fill it (grid-stride loops take the
rest); in Numba's simulator, where every simulated thread costs milliseconds
per launch, one block of a few threads."""
from numba import config, cuda

SIM = bool(config.ENABLE_CUDASIM)
THREADS = 8 if SIM else 256
MAX_BLOCKS = 1 if SIM else 8192


def blocks(n):
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))


def copy(x):
    """A fresh device array with x's contents (outputs never alias inputs or weights)."""
    out = cuda.device_array(x.shape, x.dtype)
    if x.size:
        out.copy_to_device(x)
    return out
