"""Discrete Fourier transforms (radix-2 FFT for powers of two, else the O(n^2)
sum; float64 over exact twiddle tables), STFT framing and mel filter banks.

Complex data is (..., 2) float arrays: [..., 0] real, [..., 1] imaginary."""
import math

import numpy as np

from .jit import njit


@njit(cache=True, error_model="numpy")
def _twiddles(n, sign):
    """exp(sign * 2 pi i j / n) for j < n, as (cos, sin) tables."""
    c = np.empty(n, np.float64)
    s = np.empty(n, np.float64)
    for j in range(n):
        c[j] = math.cos(2.0 * math.pi * j / n)
        s[j] = sign * math.sin(2.0 * math.pi * j / n)
    return c, s


@njit(cache=True, error_model="numpy")
def _naive(re, im, tab_c, tab_s, out_re, out_im):
    n = re.shape[0]
    for k in range(n):
        a = 0.0
        b = 0.0
        for t in range(n):
            j = (k * t) % n
            a += re[t] * tab_c[j] - im[t] * tab_s[j]
            b += re[t] * tab_s[j] + im[t] * tab_c[j]
        out_re[k] = a
        out_im[k] = b


@njit(cache=True, error_model="numpy")
def _radix2(re, im, tab_c, tab_s):
    """In-place iterative radix-2 FFT (n a power of two), twiddles from the tables."""
    n = re.shape[0]
    j = 0
    for i in range(1, n):          # bit-reversal permutation
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            re[i], re[j] = re[j], re[i]
            im[i], im[j] = im[j], im[i]
    size = 2
    while size <= n:
        half = size // 2
        stride = n // size
        for start in range(0, n, size):
            for k in range(half):
                c = tab_c[k * stride]
                s = tab_s[k * stride]
                a = start + k
                b = a + half
                tr = re[b] * c - im[b] * s
                ti = re[b] * s + im[b] * c
                re[b] = re[a] - tr
                im[b] = im[a] - ti
                re[a] += tr
                im[a] += ti
        size *= 2


@njit(cache=True, error_model="numpy")
def dft(x, n_fft, inverse, onesided, out):
    """out = DFT of x along axis 1, x: (outer, n_in, inner, 1 or 2) zero-padded or cut
    to n_fft; out: (outer, n_out, inner, 2), or (.., 1) for the inverse of a one-sided
    spectrum (Hermitian-extended first, as numpy's irfft). Radix-2 FFT when n_fft is
    a power of two, else the O(n^2) sum; float64 throughout."""
    tab_c, tab_s = _twiddles(n_fft, 1.0 if inverse else -1.0)
    scale = 1.0 / n_fft if inverse else 1.0
    complex_in = x.shape[3] == 2
    pow2 = (n_fft & (n_fft - 1)) == 0
    half = n_fft // 2
    hermitian = inverse and onesided
    re = np.empty(n_fft, np.float64)
    im = np.empty(n_fft, np.float64)
    re2 = np.empty(n_fft, np.float64)
    im2 = np.empty(n_fft, np.float64)
    for o in range(x.shape[0]):
        for i in range(x.shape[2]):
            re[:] = 0.0
            im[:] = 0.0
            m = min(x.shape[1], half + 1 if hermitian else n_fft)
            for t in range(m):
                re[t] = x[o, t, i, 0]
                im[t] = x[o, t, i, 1] if complex_in else 0.0
            if hermitian:
                for k in range(half + 1, n_fft):
                    re[k] = re[n_fft - k]
                    im[k] = -im[n_fft - k]
            if pow2:
                _radix2(re, im, tab_c, tab_s)
                rr, ii = re, im
            else:
                _naive(re, im, tab_c, tab_s, re2, im2)
                rr, ii = re2, im2
            for k in range(out.shape[1]):
                out[o, k, i, 0] = rr[k] * scale
                if out.shape[3] == 2:
                    out[o, k, i, 1] = ii[k] * scale


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
