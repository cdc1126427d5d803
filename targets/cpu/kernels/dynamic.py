"""Kernels for ops with data-dependent output shapes: each writes into a
buffer of the largest possible size and returns how much it filled."""
import numpy as np

from .jit import njit


@njit(cache=True, error_model="numpy")
def nonzero(x, shape, out):
    """out[:, :n] = the indices (rows: dims) of x's nonzero elements, in C order."""
    n = 0
    rank = shape.shape[0]
    for i in range(x.shape[0]):
        if x[i] != 0:
            r = i
            for d in range(rank - 1, -1, -1):
                out[d, n] = r % shape[d]
                r //= shape[d]
            n += 1
    return n


@njit(cache=True, error_model="numpy")
def compress(x, cond, out):
    """out[:, :k, :] = the slices x[:, j, :] where cond[j] (x: (outer, n, inner))."""
    k = 0
    for j in range(min(x.shape[1], cond.shape[0])):
        if cond[j]:
            out[:, k, :] = x[:, j, :]
            k += 1
    return k
