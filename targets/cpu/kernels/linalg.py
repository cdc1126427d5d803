"""Matrix products. Float work goes to BLAS through np.dot (scipy provides it to Numba)."""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def matmul_batched(a, b, out, a_index, b_index):
    """out[i] = a[a_index[i]] @ b[b_index[i]] on (batch, m, k) x (batch, k, n) views."""
    for i in range(out.shape[0]):
        np.dot(a[a_index[i]], b[b_index[i]], out[i])


@njit(cache=True, error_model="numpy")
def matmul_batched_int(a, b, out, a_index, b_index):
    """Integer MatMul (BLAS is float-only): plain loops, accumulating in the out dtype."""
    for i in range(out.shape[0]):
        x = a[a_index[i]]
        y = b[b_index[i]]
        for r in range(out.shape[1]):
            for c in range(out.shape[2]):
                out[i, r, c] = 0
            for k in range(x.shape[1]):
                v = x[r, k]
                for c in range(out.shape[2]):
                    out[i, r, c] += v * y[k, c]
