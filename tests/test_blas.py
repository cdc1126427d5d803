"""The kernels' GEMM (targets/cpu/kernels/blas.py) against numpy in float64, on every layout
the kernels pass (row-major, transposed, strided rows, vectors), with each binding of
runtime/blas.py: MKL where the package is installed, and scipy's OpenBLAS."""
import importlib.metadata
import os
import subprocess
import sys

import numpy as np
import pytest

import runtime.blas
from targets.cpu.kernels import blas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layouts(x):
    """x as row-major, column-major, and with padded (strided) rows."""
    return [x, np.asfortranarray(x), np.pad(x, ((0, 0), (0, 3)))[:, :x.shape[1]]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mkn", [(3, 4, 5), (1, 7, 9), (9, 7, 1), (1, 1, 1), (5, 1, 6), (64, 33, 17), (0, 3, 4), (3, 0, 4)])
def test_gemm_layouts(dtype, mkn):
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a0, b0 = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    for a in _layouts(a0):
        for b in _layouts(b0):
            base = np.full((m, n + 2), 7, dtype)                 # out with strided rows, stale values
            blas.gemm(a, b, base[:, :n])
            np.testing.assert_allclose(base[:, :n], a0.astype(np.float64) @ b0, rtol=1e-5, atol=1e-5)
            assert (base[:, n:] == 7).all()                      # the row padding is not written


@pytest.mark.parametrize("mkn", [(8, 7, 32), (13, 300, 45), (4, 600, 16), (9, 257, 33), (64, 513, 100), (21, 256, 64)])
def test_own_sgemm_layouts(mkn):
    """float32 products of at least OWN_MIN_M x OWN_MIN_N take sgemm.py's tiles: whole and
    ragged tiles (rows past M, columns past N), K across blocks of KC, every layout."""
    m, k, n = mkn
    assert m >= blas.OWN_MIN_M and n >= blas.OWN_MIN_N
    rng = np.random.default_rng(2)
    a0, b0 = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    want = a0.astype(np.float64) @ b0
    for a in _layouts(a0):
        for b in _layouts(b0):
            base = np.full((m, n + 5), 7, np.float32)
            blas.gemm(a, b, base[:, :n])
            np.testing.assert_allclose(base[:, :n], want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
            assert (base[:, n:] == 7).all()


@pytest.mark.parametrize("mkn", [(8, 7, 32), (13, 600, 45), (4, 257, 16), (64, 513, 100), (1, 30, 17)])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_gemm_packed(mkn, parts):
    """A constant B packed at compile time (sgemm.pack_panels): whole and ragged panels, K
    across blocks, column bands (their edges on panels) as the lowering splits them."""
    from targets.cpu.kernels import linalg, sgemm
    m, k, n = mkn
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    bp = sgemm.pack_panels(b)
    out = np.full((m, n + 3), 7, np.float32)
    if parts == 1:
        linalg.gemm_packed(a, bp, out[:, :n])
    else:
        linalg.gemm_packed_col_bands(a, bp, out[:, :n], parts)
    np.testing.assert_allclose(out[:, :n], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    assert (out[:, n:] == 7).all()
    with pytest.raises(ValueError):
        linalg.gemm_packed(a, bp[:-1], out[:, :n])


@pytest.mark.parametrize("kn", [(784, 512), (37, 13), (1, 5), (0, 4), (9, 1)])
def test_gemv_transposed_weight(kn):
    """A row times a weight kept transposed (linalg.gemv_t, conv_gemv's product): short and long
    dots, empty K; a NaN in the row reaches every output (the sums are reassociated, not
    assumed finite)."""
    from targets.cpu.kernels import linalg
    k, n = kn
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(k).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    wt, out = np.ascontiguousarray(w.T), np.full(n + 2, 7, np.float32)
    linalg.gemv_t(x, wt, out[:n])
    np.testing.assert_allclose(out[:n], x.astype(np.float64) @ w, rtol=1e-4, atol=1e-5 * max(1, np.sqrt(k)))
    assert (out[n:] == 7).all()
    if k:
        x[k // 2] = np.nan
        linalg.gemv_t(x, wt, out[:n])
        assert np.isnan(out[:n]).all()
    with pytest.raises(ValueError):
        linalg.gemv_t(x, wt[:, 1:] if k else wt[1:], out[:n])


@pytest.mark.parametrize("kn", [(784, 512), (512, 10), (4096, 1000), (37, 13), (300, 45), (64, 100), (1, 5), (0, 4), (9, 1), (5, 0)])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_gemv_packed(kn, parts):
    """A row times a constant packed in bands (gemv_acc.pack_bands, linalg.gemv_packed): whole
    vectors and a ragged tail, more bands than vectors, empty K or N; equal columns give
    equal outputs, the tail's too (a softmax over large logits tells them apart); a NaN in
    the row reaches every output; a packing that does not match is refused."""
    from targets.cpu.kernels import gemv_acc, linalg
    k, n = kn
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(k).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    bp, tail, bands = gemv_acc.pack_bands(w, parts)
    assert bands.shape == (parts, 3) and tail.shape == (k, n % gemv_acc.VW)
    out = np.full(n + 2, 7, np.float32)
    call = linalg.gemv_packed if parts == 1 else linalg.gemv_packed_par
    call(x, bp, tail, out[:n], bands)
    np.testing.assert_allclose(out[:n], x.astype(np.float64) @ w, rtol=1e-4, atol=1e-5 * max(1, np.sqrt(k)))
    assert (out[n:] == 7).all()
    same = gemv_acc.pack_bands(np.full((k, n), 0.37, np.float32), parts)
    call(x, same[0], same[1], out[:n], same[2])
    assert (out[:n] == out[0]).all()
    if k and n:
        x[k // 2] = np.nan
        call(x, bp, tail, out[:n], bands)
        assert np.isnan(out[:n]).all()
    with pytest.raises(ValueError):
        call(x, bp, tail, out[:n + 1], bands)
    if n >= gemv_acc.VW:
        with pytest.raises(ValueError):
            call(x, bp[:-1], tail, out[:n], bands)


@pytest.mark.parametrize("mkn", [(8, 5, 32), (13, 600, 45), (64, 37, 200), (3, 300, 7), (256, 2304, 61), (48, 480, 49),
                                 (32, 192, 196)])
@pytest.mark.parametrize("epilogue", [False, True])
def test_gemm_implicit(mkn, epilogue):
    """B never built, its rows read at offsets into one array (a conv's taps in its image):
    every tile shape and K block, the whole-K order for few columns, the epilogue in
    registers and through the ragged tile, a last few columns as dot products; a row that would run past the array is refused."""
    from targets.cpu.kernels import blas
    m, k, n = mkn
    rng = np.random.default_rng(5)
    x = rng.standard_normal(4 * n + 64).astype(np.float32)
    offs = rng.integers(0, x.size - n + 1, k).astype(np.int64)
    offs[-1] = x.size - n      # a row ending at the end of x (the ragged panel reads no further)
    a = rng.standard_normal((m, k)).astype(np.float32)
    want = a.astype(np.float64) @ x[offs[:, None] + np.arange(n)]
    bias, res = rng.standard_normal(m).astype(np.float32), rng.standard_normal((m, n)).astype(np.float32)
    out = np.full((m, n), 7, np.float32)
    if epilogue:
        blas.gemm_implicit(a, x, offs, out, bias, res, np.float32(0), np.float32(np.inf))
        want = np.maximum(want + bias[:, None] + res, 0)
    else:
        blas.gemm_implicit(a, x, offs, out, bias[:0], res[:0], np.float32(0), np.float32(0))
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    offs[0] = x.size - n + 1
    with pytest.raises(ValueError):
        blas.gemm_implicit(a, x, offs, out, bias[:0], res[:0], np.float32(0), np.float32(0))


@pytest.mark.parametrize("mkn", [(13, 300, 45), (64, 40, 96), (2, 9, 5), (9, 300, 33)])   # ragged tiles, whole ones, the BLAS, dots
@pytest.mark.parametrize("lohi", [(0.0, np.inf), (-0.5, 0.7), (-np.inf, np.inf)])  # Relu, Clip, none
@pytest.mark.parametrize("residual", [False, True])
def test_gemm_epilogue(mkn, lohi, residual):
    """clamp(a @ b + bias [+ res], lo, hi): in the micro-kernel's registers or after the BLAS,
    the unfused order (bias, then the residual, then the clamp); NaN passes the clamp."""
    m, k, n = mkn
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    a[0, 0] = np.nan                                     # row 0 of the product is NaN
    bias = rng.standard_normal(m).astype(np.float32)
    res = rng.standard_normal((m, n + 3)).astype(np.float32)[:, :n] if residual else np.empty((0, 0), np.float32)
    lo, hi = lohi
    out = np.full((m, n + 2), 7, np.float32)
    blas.gemm_epilogue(a, b, out[:, :n], bias, res, lo, hi)
    v = a.astype(np.float64) @ b + bias[:, None] + (res if residual else 0)
    want = np.where(v < lo, lo, v)
    want = np.where(want > hi, hi, want)
    np.testing.assert_allclose(out[:, :n], want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    assert np.isnan(out[0, :n]).all() and (out[:, n:] == 7).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_vectors(dtype):
    rng = np.random.default_rng(1)
    v, w, u = (rng.standard_normal(s).astype(dtype) for s in ((7,), (7, 5), (5, 7)))
    o = np.empty(5, dtype)
    blas.dot(v, w, o)
    np.testing.assert_allclose(o, v.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    blas.dot(u, v, o)
    np.testing.assert_allclose(o, u.astype(np.float64) @ v, rtol=1e-5, atol=1e-5)
    blas.dot(w.T, v, o)                                         # a transposed matrix
    np.testing.assert_allclose(o, w.T.astype(np.float64) @ v, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shapes"):
        blas.dot(w.T, v, np.empty(7, dtype))


def test_refuses_doubly_strided():
    a = np.ones((6, 10), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="strided"):
        blas.gemm(a, np.ones((5, 3), np.float32), np.empty((6, 3), np.float32))


def test_mkl_bound_where_installed():
    """With the mkl package installed, the kernels call MKL: a failed binding must not fall
    back to OpenBLAS unnoticed."""
    try:
        importlib.metadata.distribution("mkl")
    except importlib.metadata.PackageNotFoundError:
        assert runtime.blas.name == "openblas"
        return
    want = os.environ.get("ONNXJIT_BLAS", "auto")
    assert runtime.blas.name == ("openblas" if want == "openblas" else "mkl")


def test_openblas_binding():
    """ONNXJIT_BLAS=openblas binds scipy's OpenBLAS, in a process of its own."""
    code = ("import numpy as np, runtime.blas as rb; from targets.cpu.kernels import blas\n"
            "a = np.arange(12, dtype=np.float32).reshape(3, 4); b = np.ones((4, 2), np.float32)\n"
            "o = np.empty((3, 2), np.float32); blas.gemm(a, b.T.copy().T, o)\n"
            "assert rb.name == 'openblas', rb.name\n"
            "assert (o == a.sum(1, keepdims=True)).all(), o\nprint('ok')")
    env = dict(os.environ, ONNXJIT_BLAS="openblas", PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
