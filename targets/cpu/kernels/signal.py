"""Discrete Fourier transforms (naive O(n^2), float64 sums over exact twiddle
tables), STFT framing and mel filter banks.

Complex data is (..., 2) float arrays: [..., 0] real, [..., 1] imaginary."""
import math

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def _twiddles(n):
    c = np.empty(n, np.float64)
    s = np.empty(n, np.float64)
    for j in range(n):
        c[j] = math.cos(2.0 * math.pi * j / n)
        s[j] = math.sin(2.0 * math.pi * j / n)
    return c, s


@njit(cache=True, error_model="numpy")
def dft(x, n_fft, inverse, onesided, out):
    """out = DFT of x along axis 1, x: (outer, n_in, inner, 1 or 2) zero-padded or cut
    to n_fft; out: (outer, n_out, inner, 2), or (.., 1) for the inverse of a one-sided
    spectrum (which is Hermitian-extended, as numpy's irfft)."""
    tab_c, tab_s = _twiddles(n_fft)
    sign = 1.0 if inverse else -1.0
    scale = 1.0 / n_fft if inverse else 1.0
    complex_in = x.shape[3] == 2
    half = n_fft // 2
    for o in range(x.shape[0]):
        for i in range(x.shape[2]):
            if inverse and onesided:
                m = min(x.shape[1], half + 1)
                for t in range(out.shape[1]):
                    acc = 0.0
                    for k in range(n_fft):
                        kk = k if k <= half else n_fft - k
                        if kk >= m:
                            continue
                        xr = np.float64(x[o, kk, i, 0])
                        xi = np.float64(x[o, kk, i, 1]) if complex_in else 0.0
                        if k > half:
                            xi = -xi
                        j = (k * t) % n_fft
                        acc += xr * tab_c[j] - xi * tab_s[j]
                    out[o, t, i, 0] = acc * scale
                continue
            m = min(x.shape[1], n_fft)
            for k in range(out.shape[1]):
                re = 0.0
                im = 0.0
                for t in range(m):
                    xr = np.float64(x[o, t, i, 0])
                    xi = np.float64(x[o, t, i, 1]) if complex_in else 0.0
                    j = (k * t) % n_fft
                    c = tab_c[j]
                    s = sign * tab_s[j]
                    re += xr * c - xi * s
                    im += xr * s + xi * c
                out[o, k, i, 0] = re * scale
                out[o, k, i, 1] = im * scale


@njit(cache=True, error_model="numpy")
def frames(x, step, window, out):
    """out[b, f, t, :] = x[b, f * step + t, :] * window[t] (x: (batch, length, c))."""
    for b in range(out.shape[0]):
        for f in range(out.shape[1]):
            for t in range(out.shape[2]):
                for c in range(out.shape[3]):
                    out[b, f, t, c] = x[b, f * step + t, c] * window[t]


@njit(cache=True, error_model="numpy")
def mel_weights(n_fft, sample_rate, low_hz, high_hz, out):
    """out (n_fft // 2 + 1, mel bins): triangular filters evenly spaced on the mel scale."""
    n_mel = out.shape[1]
    low = 2595.0 * math.log1p(low_hz / 700.0) / math.log(10.0)
    high = 2595.0 * math.log1p(high_hz / 700.0) / math.log(10.0)
    step = (high - low) / (n_mel + 2)
    edges = np.empty(n_mel + 2, np.int64)
    for i in range(n_mel + 2):
        hz = 700.0 * math.expm1((i * step + low) / 2595.0 * math.log(10.0))
        edges[i] = int(((n_fft + 1) * hz) // sample_rate)
    out[:, :] = 0
    for i in range(n_mel):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        if mid == lo:
            out[mid, i] = 1
        else:
            for j in range(lo, mid + 1):
                out[j, i] = (j - lo) / (mid - lo)
        if hi > mid:
            for j in range(mid, hi):
                out[j, i] = (hi - j) / (hi - mid)
