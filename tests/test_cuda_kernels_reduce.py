"""targets/cuda/kernels/reduce.py against numpy, under the CUDA simulator (tiny shapes: the
simulator runs every thread in Python). Shapes cover n = 0, 1, a multiple of BLOCK and not,
and more rows than GRID blocks (the kernels' grid-stride loop over rows)."""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numba import config, cuda  # noqa: E402

if not config.ENABLE_CUDASIM and not cuda.is_available():
    pytest.skip("no CUDA simulator and no GPU", allow_module_level=True)

from targets.cuda.kernels import reduce as K  # noqa: E402

RNG = np.random.default_rng(0)
SHAPES = [(5, 13), (3, 1), (2, K.BLOCK), (2, 0)]
F32, I32 = np.float32, np.int32


def run(fn, ins, outs, *extra):
    """Copy `ins` to the device, launch fn(*ins, *outs, *extra) on fresh device `outs`
    ((shape, dtype) pairs), return the outputs on the host."""
    d_outs = [cuda.device_array(s, dt) for s, dt in outs]
    fn(*[cuda.to_device(np.ascontiguousarray(a)) for a in ins], *d_outs, *extra)
    res = [d.copy_to_host() for d in d_outs]
    return res[0] if len(res) == 1 else res


def data(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-4, 5, shape).astype(dtype)


def _f64(x):
    return x.astype(np.float64)


def _ident(kind, dt):
    if np.dtype(dt).kind == "f":
        return -np.inf if kind == "max" else np.inf
    return np.iinfo(dt).min if kind == "max" else np.iinfo(dt).max


# name: numpy reference of the (rows, n) -> (rows,) reduction, in float64 / int64 like the CPU
REFS = {
    "sum": lambda x: _f64(x).sum(1),
    "mean": lambda x: _f64(x).mean(1) if x.shape[1] else np.full(x.shape[0], np.nan),
    "l1": lambda x: np.abs(_f64(x)).sum(1),
    "l2": lambda x: np.sqrt((_f64(x) ** 2).sum(1)),
    "logsum": lambda x: np.log(_f64(x).sum(1)),
    "sumsquare": lambda x: (_f64(x) ** 2).sum(1),
    "int_sum": lambda x: x.astype(np.int64).sum(1),
    "prod": lambda x: (_f64(x) if x.dtype.kind == "f" else x.astype(np.int64)).prod(1),
    "max": lambda x: x.max(1) if x.shape[1] else np.full(x.shape[0], _ident("max", x.dtype)),
    "min": lambda x: x.min(1) if x.shape[1] else np.full(x.shape[0], _ident("min", x.dtype)),
}


def _logsumexp(x):
    x = _f64(x)
    if x.shape[1] == 0:
        return np.full(x.shape[0], -np.inf)
    m = x.max(1, keepdims=True)
    return np.log(np.exp(x - m).sum(1)) + m[:, 0]


def _check(got, ref, dtype):
    ref = np.asarray(ref)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = ref.astype(dtype)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(REFS))
def test_reduce_rows(name, shape):
    dtypes = (I32,) if name == "int_sum" else (F32, I32)
    for dt in dtypes:
        x = data(shape, dt)
        if name == "logsum":
            x = np.abs(x) + 1
        if dt == I32 and shape[1] == 0 and name in ("mean", "logsum"):
            continue        # NaN / -inf into an integer: undefined on both targets
        got = run(getattr(K, name + "_rows"), [x], [((shape[0],), dt)])
        with np.errstate(divide="ignore", invalid="ignore"):
            _check(got, REFS[name](x), dt)


@pytest.mark.parametrize("name", ["max", "min", "sum", "prod"])
def test_reduce_rows_nan_and_int64(name):
    x = data((3, 11), F32)
    x[1, 4] = np.nan
    got = run(getattr(K, name + "_rows"), [x], [((3,), F32)])
    _check(got, REFS[name](x), F32)
    assert np.isnan(got[1]) and not np.isnan(got[[0, 2]]).any()
    # beyond float64's 53 bits (prod: 3 columns, so that it does not overflow int64)
    xi = (RNG.integers(-3, 4, (3, 3 if name == "prod" else 9)) * (1 << (19 if name == "prod" else 40)) + 1)
    fn = K.int_sum_rows if name == "sum" else getattr(K, name + "_rows")
    _check(run(fn, [xi], [((3,), np.int64)]), REFS["int_sum" if name == "sum" else name](xi), np.int64)


@pytest.mark.parametrize("shape", SHAPES)
def test_logsumexp_rows(shape):
    x = data(shape, F32) * 30
    with np.errstate(divide="ignore"):
        _check(run(K.logsumexp_rows, [x], [((shape[0],), F32)]), _logsumexp(x), F32)


@pytest.mark.parametrize("shape", [(5, 13), (2, 1), (2, K.BLOCK + 1)])
def test_softmax_rows(shape):
    x = data(shape, F32) * 10
    e = np.exp(_f64(x) - _f64(x).max(1, keepdims=True))
    _check(run(K.softmax_rows, [x], [(shape, F32)], K.SOFTMAX), e / e.sum(1, keepdims=True), F32)
    _check(run(K.softmax_rows, [x], [(shape, F32)], K.LOGSOFTMAX),
           np.log(e / e.sum(1, keepdims=True)), F32)


def test_hardmax_rows_ties_and_nan():
    x = RNG.integers(0, 3, (5, 11)).astype(F32)     # many ties: the first max wins
    x[1, 0] = np.nan                                 # NaN first: index 0
    x[2, 5] = np.nan                                 # NaN elsewhere: ignored
    x[3, :] = np.nan                                 # all NaN: index 0
    ref = np.zeros_like(x)
    for r in range(5):
        row = np.where(np.isnan(x[r]), -np.inf, x[r])
        ref[r, 0 if np.isnan(x[r, 0]) else int(np.argmax(row))] = 1
    _check(run(K.softmax_rows, [x], [(x.shape, F32)], K.HARDMAX), ref, F32)


@pytest.mark.parametrize("shape", [(5, 13), (3, 1), (2, K.BLOCK)])
def test_layernorm_rows(shape):
    x, scale, bias = data(shape, F32), data(shape[1], F32), data(shape[1], F32)
    eps = 1e-3
    out, mean, inv = run(K.layernorm_rows, [x, scale, bias],
                         [(shape, F32), ((shape[0],), F32), ((shape[0],), F32)], eps)
    m = _f64(x).mean(1, keepdims=True)
    i = 1 / np.sqrt(((_f64(x) - m) ** 2).mean(1, keepdims=True) + eps)
    _check(out, (x - m) * i * scale + bias, F32)
    _check(mean, m[:, 0], F32)
    _check(inv, i[:, 0], F32)


@pytest.mark.parametrize("shape", [(2, 3, 11), (1, 2, 1)])
def test_instance_norm(shape):
    x, scale, bias = data(shape, F32), data(shape[1], F32), data(shape[1], F32)
    out = run(K.instance_norm, [x, scale, bias], [(shape, F32)], 1e-5)
    m = _f64(x).mean(2, keepdims=True)
    v = ((_f64(x) - m) ** 2).mean(2, keepdims=True)
    _check(out, (x - m) / np.sqrt(v + 1e-5) * scale[:, None] + bias[:, None], F32)


def _arg_ref(x3, is_max, last):
    """np.argmax / np.argmin over axis 1 (first NaN wins); the flipped array for `last`."""
    f = np.argmax if is_max else np.argmin
    if not last:
        return f(x3, axis=1)
    return x3.shape[1] - 1 - f(x3[:, ::-1], axis=1)


@pytest.mark.parametrize("shape", [(3, 13, 1), (2, 5, 3), (2, 1, 1), (1, 1, 3)])
@pytest.mark.parametrize("dt", [F32, I32])
def test_arg_reduce(shape, dt):
    x = RNG.integers(0, 3, shape).astype(dt)         # small values: many ties
    if dt == F32 and shape[1] > 4:
        x[0, 2, 0] = x[0, 4, 0] = np.nan
    for is_max in (True, False):
        for last in (False, True):
            got = run(K.arg_reduce, [x], [((shape[0], shape[2]), np.int64)], is_max, last)
            np.testing.assert_array_equal(got, _arg_ref(x, is_max, last), err_msg=f"{is_max=} {last=}")


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 9, 1), (1, 1, 2)])
@pytest.mark.parametrize("dt", [F32, I32])
def test_cumulative(shape, dt):
    x = data(shape, dt)
    for is_prod in (False, True):
        for exclusive in (False, True):
            for reverse in (False, True):
                y = x[:, ::-1] if reverse else x
                ref = (np.cumprod if is_prod else np.cumsum)(y, axis=1, dtype=dt)
                if exclusive:
                    ref = np.concatenate([np.full_like(ref[:, :1], int(is_prod)), ref[:, :-1]], axis=1)
                ref = ref[:, ::-1] if reverse else ref
                got = run(K.cumulative, [x], [(shape, dt)], exclusive, reverse, is_prod)
                _check(got, ref, dt)
