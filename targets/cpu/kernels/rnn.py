"""Hand-written Numba kernels for ONNX RNN, GRU and LSTM.

Per direction, one GEMM projects the inputs of every time step at once
(X @ W^T, rows ordered as X's layout), then each step does one GEMM of the
hidden state with the recurrent weights (GRU without linear_before_reset: two,
the second on r * H) and finishes the gates row by row.

Shared conventions:
* layout 0: X [seq, batch, in], Y [seq, dirs, batch, hidden], states [dirs, batch, hidden];
  layout 1: X [batch, seq, in], Y [batch, seq, dirs, hidden], states [batch, dirs, hidden].
* direction: 0 forward, 1 reverse, 2 bidirectional (direction 1 of it runs reversed).
* A batch entry b runs seq_lens[b] steps (reversed: from seq_lens[b] - 1 down to 0);
  Y is zero past its length and the states keep its last step.
* An absent output is a zero-size array. Activations are integer codes (see
  ACTIVATIONS) with per-direction alpha/beta; `clip` bounds every activation's
  input (np.inf: no clip).
"""
import math

import numpy as np
from numba import njit

SIGMOID, TANH, RELU, AFFINE, LEAKY_RELU, THRESHOLDED_RELU = 0, 1, 2, 3, 4, 5
SCALED_TANH, HARD_SIGMOID, ELU, SOFTSIGN, SOFTPLUS = 6, 7, 8, 9, 10

# lower-cased ONNX activation name -> (code, default alpha, default beta); alpha/beta
# None: the function takes none (the attribute lists are consumed only by those that do).
ACTIVATIONS = {
    "sigmoid": (SIGMOID, None, None),
    "tanh": (TANH, None, None),
    "relu": (RELU, None, None),
    "affine": (AFFINE, 1.0, 0.0),
    "leakyrelu": (LEAKY_RELU, 0.01, None),
    "thresholdedrelu": (THRESHOLDED_RELU, 1.0, None),
    "scaledtanh": (SCALED_TANH, 1.0, 1.0),
    "hardsigmoid": (HARD_SIGMOID, 0.2, 0.5),
    "elu": (ELU, 1.0, None),
    "softsign": (SOFTSIGN, None, None),
    "softplus": (SOFTPLUS, None, None),
}


@njit(cache=True, error_model="numpy")
def _scalar_act(a, code, alpha, beta):
    if code == SIGMOID:
        return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))
    if code == TANH:
        return math.tanh(a)
    if code == RELU:
        return max(a, 0.0)
    if code == AFFINE:
        return alpha * a + beta
    if code == LEAKY_RELU:
        return a if a >= 0 else alpha * a
    if code == THRESHOLDED_RELU:
        return a if a > alpha else 0.0
    if code == SCALED_TANH:
        return alpha * math.tanh(beta * a)
    if code == HARD_SIGMOID:
        return min(max(alpha * a + beta, 0.0), 1.0)
    if code == ELU:
        return a if a >= 0 else alpha * (math.exp(a) - 1.0)
    if code == SOFTSIGN:
        return a / (1.0 + abs(a))
    return math.log1p(math.exp(a)) if a < 30.0 else a    # SOFTPLUS


@njit(cache=True, error_model="numpy")
def _activate(v, clip, codes, alphas, betas, d, k):
    """v[:] = act_k(clip(v)) in place, with direction d's k-th activation."""
    code, alpha, beta = codes[d, k], alphas[d, k], betas[d, k]
    for j in range(v.shape[0]):
        a = min(max(np.float64(v[j]), -clip), clip)
        v[j] = _scalar_act(a, code, alpha, beta)


@njit(cache=True, error_model="numpy")
def _dims(x, layout):
    """(seq, batch) of X."""
    if layout == 0:
        return x.shape[0], x.shape[1]
    return x.shape[1], x.shape[0]


@njit(cache=True, error_model="numpy")
def _project(x, w, d):
    """X @ W[d]^T for all time steps: one row per (time, batch) in X's memory order."""
    x2 = np.ascontiguousarray(x).reshape(x.shape[0] * x.shape[1], x.shape[2])
    return np.dot(x2, w[d].T)


@njit(cache=True, error_model="numpy")
def _row(t, b, seq, batch, layout):
    return t * batch + b if layout == 0 else b * seq + t


@njit(cache=True, error_model="numpy")
def _time(s, length, reverse):
    """Time index of step s for a batch entry of this length (-1: finished)."""
    if s >= length:
        return -1
    return length - 1 - s if reverse else s


@njit(cache=True, error_model="numpy")
def _load_state(init, d, batch, layout):
    """A (batch, hidden) copy of direction d's initial state."""
    out = np.empty((batch, init.shape[2]), init.dtype)
    for b in range(batch):
        out[b] = init[d, b] if layout == 0 else init[b, d]
    return out


@njit(cache=True, error_model="numpy")
def _store_state(out, state, d, layout):
    if out.size == 0:
        return
    for b in range(state.shape[0]):
        if layout == 0:
            out[d, b] = state[b]
        else:
            out[b, d] = state[b]


@njit(cache=True, error_model="numpy")
def _store_y(y, h, t, d, b, layout):
    if y.size == 0:
        return
    if layout == 0:
        y[t, d, b] = h
    else:
        y[b, t, d] = h


@njit(cache=True, error_model="numpy")
def rnn(x, w, r, bias, seq_lens, h0, y, yh, layout, direction, codes, alphas, betas, clip):
    """Ht = f(Xt W^T + Ht-1 R^T + Wb + Rb)."""
    seq, batch = _dims(x, layout)
    hs = r.shape[2]
    y[...] = 0
    for d in range(w.shape[0]):
        reverse = direction == 1 or d == 1
        xw = _project(x, w, d)
        bsum = bias[d, :hs] + bias[d, hs:]
        h = _load_state(h0, d, batch, layout)
        hr = np.empty((batch, hs), x.dtype)
        for s in range(seq):
            np.dot(h, r[d].T, hr)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                g = xw[_row(t, b, seq, batch, layout)] + hr[b] + bsum
                _activate(g, clip, codes, alphas, betas, d, 0)
                h[b] = g
                _store_y(y, g, t, d, b, layout)
        _store_state(yh, h, d, layout)


@njit(cache=True, error_model="numpy")
def gru(x, w, r, bias, seq_lens, h0, y, yh, layout, direction, codes, alphas, betas, clip,
        linear_before_reset):
    """Gates z, r, h: z = f(..), r = f(..), h~ = g(Xt Wh^T + (r * Ht-1) Rh^T + Rbh + Wbh)
    (linear_before_reset: g(Xt Wh^T + r * (Ht-1 Rh^T + Rbh) + Wbh)); Ht = (1 - z) h~ + z Ht-1."""
    seq, batch = _dims(x, layout)
    hs = r.shape[2]
    y[...] = 0
    for d in range(w.shape[0]):
        reverse = direction == 1 or d == 1
        xw = _project(x, w, d)
        r_zr = np.ascontiguousarray(r[d, :2 * hs].T)
        r_h = np.ascontiguousarray(r[d, 2 * hs:].T)
        b_zr = bias[d, :2 * hs] + bias[d, 3 * hs:5 * hs]
        wb_h = bias[d, 2 * hs:3 * hs]
        rb_h = bias[d, 5 * hs:]
        h = _load_state(h0, d, batch, layout)
        zr = np.empty((batch, 2 * hs), x.dtype)
        rh = np.zeros((batch, hs), x.dtype)     # r * H, or H @ Rh^T when linear_before_reset
        hh = np.empty((batch, hs), x.dtype)
        for s in range(seq):
            np.dot(h, r_zr, zr)
            if linear_before_reset:
                np.dot(h, r_h, hh)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                g = zr[b]
                g += xw[_row(t, b, seq, batch, layout), :2 * hs] + b_zr
                _activate(g[:hs], clip, codes, alphas, betas, d, 0)
                _activate(g[hs:], clip, codes, alphas, betas, d, 0)
                if not linear_before_reset:
                    rh[b] = g[hs:] * h[b]
            if not linear_before_reset:
                np.dot(rh, r_h, hh)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                z, rg = zr[b, :hs], zr[b, hs:]
                n = xw[_row(t, b, seq, batch, layout), 2 * hs:] + wb_h
                if linear_before_reset:
                    n += rg * (hh[b] + rb_h)
                else:
                    n += hh[b] + rb_h
                _activate(n, clip, codes, alphas, betas, d, 1)
                h[b] = (1.0 - z) * n + z * h[b]
                _store_y(y, h[b], t, d, b, layout)
        _store_state(yh, h, d, layout)


@njit(cache=True, error_model="numpy")
def lstm(x, w, r, bias, seq_lens, h0, c0, p, y, yh, yc, layout, direction, codes, alphas, betas,
         clip, input_forget):
    """Gates i, o, f, c with peepholes p (i, o, f): Ct = f Ct-1 + i g(c~), Ht = o h(Ct);
    input_forget couples the forget gate to 1 - i."""
    seq, batch = _dims(x, layout)
    hs = r.shape[2]
    y[...] = 0
    for d in range(w.shape[0]):
        reverse = direction == 1 or d == 1
        xw = _project(x, w, d)
        bsum = bias[d, :4 * hs] + bias[d, 4 * hs:]
        pi, po, pf = p[d, :hs], p[d, hs:2 * hs], p[d, 2 * hs:]
        h = _load_state(h0, d, batch, layout)
        c = _load_state(c0, d, batch, layout)
        g = np.empty((batch, 4 * hs), x.dtype)
        for s in range(seq):
            np.dot(h, r[d].T, g)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                gb = g[b]
                gb += xw[_row(t, b, seq, batch, layout)] + bsum
                gi, go, gf, gc = gb[:hs], gb[hs:2 * hs], gb[2 * hs:3 * hs], gb[3 * hs:]
                cb = c[b]
                gi += pi * cb
                _activate(gi, clip, codes, alphas, betas, d, 0)
                if input_forget:
                    gf[:] = 1.0 - gi
                else:
                    gf += pf * cb
                    _activate(gf, clip, codes, alphas, betas, d, 0)
                _activate(gc, clip, codes, alphas, betas, d, 1)
                cb[:] = gf * cb + gi * gc
                go += po * cb
                _activate(go, clip, codes, alphas, betas, d, 0)
                hc = cb.copy()
                _activate(hc, np.inf, codes, alphas, betas, d, 2)
                h[b] = go * hc
                _store_y(y, h[b], t, d, b, layout)
        _store_state(yh, h, d, layout)
        _store_state(yc, c, d, layout)
