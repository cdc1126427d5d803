"""targets/cuda/kernels/indexing.py against the CPU kernels (targets/cpu/kernels/indexing.py,
which pass ONNX conformance) on random inputs, under the CUDA simulator. Tiny shapes: the
simulator runs every thread in Python; sizes include 1 and more items than one launch of
GRID * BLOCK threads (the grid-stride loops)."""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numba import config, cuda  # noqa: E402

if not config.ENABLE_CUDASIM and not cuda.is_available():
    pytest.skip("no CUDA simulator and no GPU", allow_module_level=True)

from targets.cpu.kernels import indexing as C  # noqa: E402
from targets.cuda.kernels import indexing as K  # noqa: E402

RNG = np.random.default_rng(0)
F32, F64, I32, I64 = np.float32, np.float64, np.int32, np.int64
BIG = K.GRID * K.BLOCK + 3   # more items than threads in one launch


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def both(name, ins, outs, *extra):
    """Run CPU kernel `name` and its CUDA launcher on the same inputs; return both outputs."""
    cpu = [np.zeros(s, dt) for s, dt in outs]
    getattr(C, name)(*ins, *cpu, *extra)
    d_outs = [cuda.to_device(np.zeros(s, dt)) for s, dt in outs]
    getattr(K, name)(*[dev(a) if isinstance(a, np.ndarray) else a for a in ins], *d_outs, *extra)
    return cpu, [d.copy_to_host() for d in d_outs]


def check(name, ins, outs, *extra):
    cpu, gpu = both(name, ins, outs, *extra)
    for c, g in zip(cpu, gpu):
        np.testing.assert_array_equal(g, c)


def data(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-9, 10, shape).astype(dtype)


def indices(shape, n, dtype=I64):
    """Valid indices into a dim of size n, negatives included."""
    return RNG.integers(-n, n, shape).astype(dtype)


# --------------------------------------------------------------------------- gathers


@pytest.mark.parametrize("shape,k", [((2, 5, 3), 4), ((1, 1, 1), 1), ((1, 3, 1), BIG)])
@pytest.mark.parametrize("dt,it", [(F32, I64), (I32, I32)])
def test_gather(shape, k, dt, it):
    x = data(shape, dt)
    check("gather", [x, indices(k, shape[1], it)], [((shape[0], k, shape[2]), dt)])


@pytest.mark.parametrize("dshape,ishape,axis", [((3, 4, 2), (2, 3, 2), 1), ((3, 4, 2), (5, 1, 2), 0),
                                                ((3, 4, 2), (3, 2, 3), -1), ((6,), (BIG,), 0)])
@pytest.mark.parametrize("dt,it", [(F32, I64), (I64, I32)])
def test_gather_elements(dshape, ishape, axis, dt, it):
    x = data(dshape, dt)
    idx = indices(ishape, dshape[axis], it)
    check("gather_elements", [x.ravel(), np.array(dshape, I64), idx.ravel(), np.array(ishape, I64)],
          [((idx.size,), dt)], axis)


@pytest.mark.parametrize("d3,dims,nj", [((2, 12, 3), (3, 4), 5), ((1, 6, 1), (6,), BIG), ((2, 1, 4), (), 3)])
def test_gather_nd(d3, dims, nj):
    x = data(d3, F32)
    k = len(dims)
    idx = np.stack([indices((d3[0], nj), n) for n in dims], -1) if k else np.zeros((d3[0], nj, 0), I64)
    check("gather_nd", [x, np.array(dims, I64), idx.reshape(d3[0], nj, k)], [((d3[0], nj, d3[2]), F32)])


def test_gather_clamps_out_of_range():
    """The CPU raises; the device clamps (documented) instead of reading out of bounds."""
    x = np.arange(5, dtype=F32).reshape(1, 5, 1)
    out = cuda.to_device(np.zeros((1, 3, 1), F32))
    K.gather(dev(x), dev(np.array([7, -9, 2], I64)), out)
    np.testing.assert_array_equal(out.copy_to_host().ravel(), [4, 0, 2])


# --------------------------------------------------------------------------- scatters


def _nan_some(x):
    if x.dtype.kind == "f":
        x = x.copy()
        x.flat[::5] = np.nan
    return x


@pytest.mark.parametrize("reduction", range(5))
@pytest.mark.parametrize("dshape,ishape,axis", [((3, 4, 2), (2, 6, 2), 1), ((4, 3), (7, 2), 0),
                                                ((2, 5), (2, 3), -1), ((1,), (4,), 0)])
@pytest.mark.parametrize("dt,it", [(F32, I64), (I32, I32)])
def test_scatter_elements(reduction, dshape, ishape, axis, dt, it):
    """Duplicate indices on purpose: the device applies each line in order like the CPU."""
    x = data(dshape, dt)
    idx = indices(ishape, dshape[axis], it)
    upd = _nan_some(data(ishape, dt))
    check("scatter_elements", [x.ravel(), np.array(dshape, I64), idx.ravel(), np.array(ishape, I64), upd.ravel()],
          [((x.size,), dt)], axis, reduction)


def test_scatter_elements_skips_out_of_range():
    x = np.zeros(4, F32)
    out = cuda.to_device(np.zeros(4, F32))
    K.scatter_elements(dev(x), dev(np.array([4], I64)), dev(np.array([1, 9, -7], I64)),
                       dev(np.array([3], I64)), dev(np.array([1, 2, 3], F32)), out, 0, 0)
    np.testing.assert_array_equal(out.copy_to_host(), [0, 1, 0, 0])


@pytest.mark.parametrize("reduction", range(5))
@pytest.mark.parametrize("dims,s,nj", [((3, 4), 2, 6), ((5,), 1, BIG), ((2,), 3, 1)])
@pytest.mark.parametrize("dt", [F32, I64])
def test_scatter_nd(reduction, dims, s, nj, dt):
    P = int(np.prod(dims))
    x = data((P, s), dt)
    if reduction == 0:   # duplicates are undefined for 'none': distinct rows
        nj = min(nj, P)
        flat = RNG.permutation(P)[:nj]
        idx = np.stack(np.unravel_index(flat, dims), -1) - RNG.integers(0, 2, (nj, len(dims))) * np.array(dims)
    else:
        idx = np.stack([indices(nj, n) for n in dims], -1)
    upd = _nan_some(data((nj, s), dt))
    check("scatter_nd", [x, np.array(dims, I64), idx.astype(I64), upd], [((P, s), dt)], reduction)


# --------------------------------------------------------------------------- TopK


@pytest.mark.parametrize("rows,n,k", [(3, 7, 3), (2, 5, 5), (1, 1, 1), (BIG, 2, 1), (2, 9, 0)])
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dt", [F32, I32])
def test_topk(rows, n, k, largest, dt):
    x = RNG.integers(-3, 4, (rows, n)).astype(dt)   # many ties
    if dt == F32 and x.size > 2:
        x.flat[::4] = np.nan
    check("topk", [x, k, largest, True], [((rows, k), dt), ((rows, k), I64)])


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("k", [-1, 0, 2])
@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize("shape,dt", [((2, 3, 4), F32), ((1, 5, 2), I64)])
def test_trilu(k, upper, shape, dt):
    check("trilu", [data(shape, dt)], [(shape, dt)], k, upper)


@pytest.mark.parametrize("outer,depth,inner", [(2, 4, 3), (1, 1, 1), (BIG, 2, 1)])
@pytest.mark.parametrize("it,dt", [(I64, F32), (F32, I64), (I32, F64)])
def test_one_hot(outer, depth, inner, it, dt):
    idx = RNG.integers(-depth - 2, depth + 2, outer * inner).astype(it)
    if it == F32:
        idx += 0.5
    off, on = dt(-1), dt(3)
    cpu = np.zeros((outer, depth, inner), dt)
    C.one_hot(idx, depth, off, on, cpu)
    out = cuda.to_device(np.zeros_like(cpu))
    K.one_hot(dev(idx), depth, off, on, out)
    np.testing.assert_array_equal(out.copy_to_host(), cpu)


@pytest.mark.parametrize("batch_axis", [0, 1])
@pytest.mark.parametrize("shape", [(3, 4, 2), (4, 3, 1), (1, 1, 1)])
@pytest.mark.parametrize("lt", [I64, I32])
def test_reverse_sequence(batch_axis, shape, lt):
    nb = shape[batch_axis]
    nt = shape[1 - batch_axis]
    lens = RNG.integers(-1, nt + 2, nb).astype(lt)
    check("reverse_sequence", [data(shape, F32), lens], [(shape, F32)], batch_axis, 1 - batch_axis)
