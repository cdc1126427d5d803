"""Matrix products on the GPU: one tiled shared-memory GEMM for float and integer MatMul.

Mirrors targets/cpu/kernels/linalg.py: ``out[i] = a[a_index[i]] @ b[b_index[i]]`` on
(batch, m, k) x (batch, k, n) views, where a_index / b_index (int64 device arrays) map each
output batch entry to the operand entry it broadcasts from.  Sums run in the output dtype,
like the CPU target (BLAS for floats, wrapping integer loops for ints).
"""
import math

from numba import config, cuda

SIM = bool(config.ENABLE_CUDASIM)
TILE = 4 if SIM else 16              # square tile: TILE x TILE threads, one output each
MAX_BLOCKS = 2 if SIM else 1 << 16   # blocks walk the tiles with a stride of gridDim.x

_OPERANDS = "{t}[:, :, ::1], {t}[:, :, ::1], {t}[:, :, ::1], int64[::1], int64[::1]"
SIGNATURES = {
    "_gemm_kernel": [f"void({_OPERANDS.format(t=t)})" for t in ("float32", "float64", "int32", "int64")],
}


@cuda.jit
def _gemm_kernel(a, b, out, a_index, b_index):
    """Classic shared-memory tiling: each block stages a TILE x TILE slab of A and of B per
    K step so every global element is read once per tile instead of once per output.

    Work item t = (batch, tile row, tile col); a block loops over work items with a stride
    of gridDim.x, so any grid size is correct.  Out-of-range rows/cols/k load zeros, which
    makes M, N, K free of any multiple-of-TILE requirement.
    """
    sa = cuda.shared.array((TILE, TILE), a.dtype)
    sb = cuda.shared.array((TILE, TILE), b.dtype)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    nb, m, n = out.shape
    k = a.shape[2]
    tm = (m + TILE - 1) // TILE
    tn = (n + TILE - 1) // TILE
    for t in range(cuda.blockIdx.x, nb * tm * tn, cuda.gridDim.x):
        i = t // (tm * tn)
        r = t % (tm * tn)
        row = (r // tn) * TILE + ty
        col = (r % tn) * TILE + tx
        ai = a_index[i]
        bi = b_index[i]
        acc = out.dtype.type(0)
        for k0 in range(0, k, TILE):
            ka = k0 + tx
            kb = k0 + ty
            sa[ty, tx] = 0
            if row < m and ka < k:
                sa[ty, tx] = a[ai, row, ka]
            sb[ty, tx] = 0
            if kb < k and col < n:
                sb[ty, tx] = b[bi, kb, col]
            cuda.syncthreads()
            for kk in range(TILE):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        if row < m and col < n:
            out[i, row, col] = acc


def matmul_batched(a, b, out, a_index, b_index):
    """out[i] = a[a_index[i]] @ b[b_index[i]] for every batch entry i of out (nb, m, n)."""
    nb, m, n = out.shape
    tiles = nb * math.ceil(m / TILE) * math.ceil(n / TILE)
    if tiles == 0:
        return
    _gemm_kernel[min(tiles, MAX_BLOCKS), (TILE, TILE)](a, b, out, a_index, b_index)


def matmul_batched_int(a, b, out, a_index, b_index):
    """Integer MatMul: the same GEMM, accumulating (and wrapping) in the integer out dtype."""
    matmul_batched(a, b, out, a_index, b_index)

