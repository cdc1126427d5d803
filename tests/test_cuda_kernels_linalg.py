"""CUDA MatMul kernels (targets/cuda/kernels/linalg.py) against numpy's matmul.

Runs under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1, tile 4) or on a GPU; shapes are
tiny and chosen so M, N, K straddle the tile size.  The batch index arrays are built the
way targets/cpu/lower.py builds them for the CPU kernel.
"""
import numpy as np
import pytest
from numba import config, cuda

if not config.ENABLE_CUDASIM and not cuda.is_available():
    pytest.skip("needs a GPU or NUMBA_ENABLE_CUDASIM=1", allow_module_level=True)

from targets.cuda.kernels import linalg  # noqa: E402

RNG = np.random.default_rng(0)


def _run(a, b, fn):
    """MatMul of (..., m, k) x (..., k, n) via the batched launcher, batch dims broadcast."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_idx = np.broadcast_to(np.arange(int(np.prod(a.shape[:-2]))).reshape(a.shape[:-2]), batch).reshape(-1)
    b_idx = np.broadcast_to(np.arange(int(np.prod(b.shape[:-2]))).reshape(b.shape[:-2]), batch).reshape(-1)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    nb = int(np.prod(batch))
    out = cuda.device_array((nb, m, n), a.dtype)
    fn(cuda.to_device(np.ascontiguousarray(a.reshape(a_idx.max() + 1, m, k))),
       cuda.to_device(np.ascontiguousarray(b.reshape(b_idx.max() + 1, k, n))),
       out, cuda.to_device(a_idx.astype(np.int64)), cuda.to_device(b_idx.astype(np.int64)))
    return out.copy_to_host().reshape(batch + (m, n))


SHAPES = [
    ((1, 5, 7), (1, 7, 3)),        # M, N, K not multiples of the tile
    ((2, 4, 4), (2, 4, 4)),        # exact tiles, two batch entries
    ((3, 1, 6), (1, 6, 1)),        # m = n = 1, b broadcast over the batch
    ((2, 1, 3, 5), (1, 3, 5, 2)),  # both operands broadcast: batch (2, 3)
    ((1, 2, 9), (1, 9, 6)),        # k spans three tiles
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_float(sa, sb, dtype):
    a = RNG.standard_normal(sa).astype(dtype)
    b = RNG.standard_normal(sb).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_run(a, b, linalg.matmul_batched), np.matmul(a, b), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("sa,sb", SHAPES[:4])
def test_matmul_int(sa, sb, dtype):
    a = RNG.integers(-50, 50, sa).astype(dtype)
    b = RNG.integers(-50, 50, sb).astype(dtype)
    np.testing.assert_array_equal(_run(a, b, linalg.matmul_batched_int), np.matmul(a, b))


@pytest.mark.filterwarnings("ignore:overflow")  # the simulator wraps in numpy scalars
def test_matmul_int32_wraps_like_numpy():
    a = np.full((1, 2, 3), 2 ** 20, np.int32)
    b = np.full((1, 3, 2), 2 ** 12, np.int32)
    np.testing.assert_array_equal(_run(a, b, linalg.matmul_batched_int), np.matmul(a, b))


def test_matmul_empty_k_gives_zeros():
    a = np.ones((1, 3, 0), np.float32)
    b = np.ones((1, 0, 2), np.float32)
    np.testing.assert_array_equal(_run(a, b, linalg.matmul_batched), np.zeros((1, 3, 2), np.float32))
