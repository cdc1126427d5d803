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
  Y is zero past its length and the states keep its last step (zero when empty).
* An absent output is a zero-size array. Activations are integer codes (see
  ACTIVATIONS) with per-direction alpha/beta; `clip` bounds the input of every
  activation but LSTM's h(Ct), as onnxruntime does (np.inf: no clip).
"""
import math

import numpy as np

from .gemv_acc import accumulate as gemv_accumulate, pack as gemv_pack, padded as gemv_padded
from .blas import gemm
from .linalg import gemm_packed, gemm_packed_col_bands
from .fastmath import sigmoid32, tanh32
from .jit import njit

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
        return 1.0 / (1.0 + math.exp(-a))     # exp overflow gives inf, so 0: no NaN
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
def _act(a, clip, codes, alphas, betas, d, k):
    """Direction d's k-th activation of clip(a)."""
    a = min(max(np.float64(a), -clip), clip)
    return _scalar_act(a, codes[d, k], alphas[d, k], betas[d, k])


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
    out = np.empty((x2.shape[0], w.shape[1]), x.dtype)
    gemm(x2, w[d].T, out)
    return out


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
    """A (batch, hidden) copy of direction d's initial state. Element by element: a row
    assignment (out[b] = init[d, b]) compiles Numba's shape-mismatch error message, 2.4 s of
    the LSTM's cold compile."""
    out = np.empty((batch, init.shape[2]), init.dtype)
    for b in range(batch):
        for j in range(init.shape[2]):
            out[b, j] = init[d, b, j] if layout == 0 else init[b, d, j]
    return out


@njit(cache=True, error_model="numpy")
def _store_state(out, state, seq_lens, d, layout):
    """The final state; zero for an empty sequence (as onnxruntime does)."""
    if out.size == 0:
        return
    for b in range(state.shape[0]):
        for j in range(state.shape[1]):
            v = state[b, j] if seq_lens[b] > 0 else 0
            if layout == 0:
                out[d, b, j] = v
            else:
                out[b, d, j] = v


@njit(cache=True, error_model="numpy")
def _store_y(y, h, t, d, b, layout):
    """y's row for step t, direction d, batch b (element by element: see _load_state)."""
    if y.size == 0:
        return
    for j in range(h.shape[0]):
        if layout == 0:
            y[t, d, b, j] = h[j]
        else:
            y[b, t, d, j] = h[j]


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
            gemm(h, r[d].T, hr)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                xr, hb, gb = xw[_row(t, b, seq, batch, layout)], h[b], hr[b]
                for j in range(hs):
                    hb[j] = _act(xr[j] + gb[j] + bsum[j], clip, codes, alphas, betas, d, 0)
                _store_y(y, hb, t, d, b, layout)
        _store_state(yh, h, seq_lens, d, layout)


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
        wb, rb = bias[d, :3 * hs], bias[d, 3 * hs:]
        h = _load_state(h0, d, batch, layout)
        zr = np.empty((batch, 2 * hs), x.dtype)  # H Rz^T, H Rr^T, then the gates z, r
        rh = np.zeros((batch, hs), x.dtype)      # r * H (the input of the second GEMM)
        hh = np.empty((batch, hs), x.dtype)      # (r * H) Rh^T, or H Rh^T with linear_before_reset
        for s in range(seq):
            gemm(h, r_zr, zr)
            if linear_before_reset:
                gemm(h, r_h, hh)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                xr, g, hb = xw[_row(t, b, seq, batch, layout)], zr[b], h[b]
                for j in range(2 * hs):
                    g[j] = _act(g[j] + xr[j] + wb[j] + rb[j], clip, codes, alphas, betas, d, 0)
                for j in range(hs):
                    rh[b, j] = g[hs + j] * hb[j]
            if not linear_before_reset:
                gemm(rh, r_h, hh)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                xr, g, hb, hr = xw[_row(t, b, seq, batch, layout)], zr[b], h[b], hh[b]
                for j in range(hs):
                    k = 2 * hs + j
                    if linear_before_reset:
                        a = xr[k] + wb[k] + g[hs + j] * (hr[j] + rb[k])
                    else:
                        a = xr[k] + wb[k] + hr[j] + rb[k]
                    n = _act(a, clip, codes, alphas, betas, d, 1)
                    hb[j] = (1.0 - g[j]) * n + g[j] * hb[j]
                _store_y(y, hb, t, d, b, layout)
        _store_state(yh, h, seq_lens, d, layout)


@njit(cache=True, error_model="numpy")
def _is_plain(codes, clip, p, input_forget):
    """Default LSTM activations (sigmoid, tanh, tanh) in every direction, no clip, no
    peepholes, no coupled input-forget gate: the cell _plain_cell32 computes."""
    if input_forget or clip != np.inf:
        return False
    for d in range(codes.shape[0]):
        if codes[d, 0] != SIGMOID or codes[d, 1] != TANH or codes[d, 2] != TANH:
            return False
    for v in p.ravel():
        if v != 0:
            return False
    return True


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _plain_cell32(g, bsum, c, h, hs):
    """One batch row of a default float32 LSTM cell, its gates i, o, f, c as g + bsum (g: the
    step's x @ W^T + h @ R^T); states c, h updated in place. Branch-free so it vectorises: the
    generic path's float64 libm calls per gate value took ~3x as long on the bench LSTM."""
    for j in range(hs):
        cn = (sigmoid32(g[2 * hs + j] + bsum[2 * hs + j]) * c[j]
              + sigmoid32(g[j] + bsum[j]) * tanh32(g[3 * hs + j] + bsum[3 * hs + j]))
        c[j] = cn
        h[j] = sigmoid32(g[hs + j] + bsum[hs + j]) * tanh32(cn)


@njit(cache=True, error_model="numpy")
def _plain_lstm32(x, w, r, bsum, seq_lens, h, c, y, d, reverse, layout, wp, rp, xwp):
    """Direction d of a default float32 LSTM: the inputs' projection into rows padded to whole
    vectors (wp: W[d]^T packed at compile time, sgemm.pack_panels; empty: W is no constant;
    xwp: every direction's, made before by lstm_projections_par, or empty), then each step adds
    h @ R^T into its row in gemv_acc's kernel (rp: R[d]^T packed, or packed here) and runs the
    cell over it."""
    seq, batch = _dims(x, layout)
    hs = r.shape[2]
    if xwp.shape[0] > 0:
        xw = xwp[d]
    else:
        x2, xw1 = _projection_rows(x, 1, hs)
        xw = xw1[0]
        if wp.shape[0] > 0:
            gemm_packed(x2, wp[d], xw)
        else:
            gemm(x2, w[d].T, xw[:, :4 * hs])
    rpd = rp[d] if rp.shape[0] > 0 else gemv_pack(r[d].T)
    for s in range(seq):
        for b in range(batch):
            t = _time(s, seq_lens[b], reverse)
            if t < 0:
                continue
            g, hb = xw[_row(t, b, seq, batch, layout)], h[b]
            gemv_accumulate(rpd, hb, g)
            _plain_cell32(g, bsum, c[b], hb, hs)
            _store_y(y, hb, t, d, b, layout)


@njit(cache=True, error_model="numpy")
def lstm_projections_par(x, wp, hs, parts):
    """Every direction's input projection of a default float32 LSTM with W constant (wp: W^T
    packed per direction), in `parts` column bands on as many threads: _plain_lstm32's rows
    (lstm's xwp). The recurrence after it stays on one thread (a barrier a step would be the
    only way to share it); this is the part that splits without one."""
    x2, xw = _projection_rows(x, wp.shape[0], hs)
    for d in range(wp.shape[0]):
        gemm_packed_col_bands(x2, wp[d], xw[d], parts)
    return xw


@njit(cache=True, error_model="numpy")
def _projection_rows(x, dirs, hs):
    """x as rows (seq * batch, input), and `dirs` directions of zeroed projection rows of 4 hs
    gates padded to gemv_acc's whole vectors: the operands of a plain LSTM's input projection."""
    x2 = np.ascontiguousarray(x).reshape(x.shape[0] * x.shape[1], x.shape[2])
    return x2, np.zeros((dirs, x2.shape[0], gemv_padded(4 * hs)), np.float32)


@njit(cache=True, error_model="numpy")
def lstm(x, w, r, bias, seq_lens, h0, c0, p, y, yh, yc, layout, direction, codes, alphas, betas,
         clip, input_forget, wp, rp, xwp):
    """Gates i, o, f, c with peepholes p (i, o, f): Ct = f Ct-1 + i g(c~), Ht = o h(Ct);
    input_forget couples the forget gate to 1 - i. wp, rp: W^T and R^T per direction packed
    for the default float32 cell (_plain_lstm32) where they are constants, else zero-size;
    xwp: that cell's input projections where the lowering made them in parallel, else zero-size."""
    seq, batch = _dims(x, layout)
    hs = r.shape[2]
    y[...] = 0
    plain = x.itemsize == 4 and _is_plain(codes, clip, p, input_forget)
    for d in range(w.shape[0]):
        reverse = direction == 1 or d == 1
        bsum = bias[d, :4 * hs] + bias[d, 4 * hs:]
        pd = p[d]
        h = _load_state(h0, d, batch, layout)
        c = _load_state(c0, d, batch, layout)
        if plain:
            _plain_lstm32(x, w, r, bsum, seq_lens, h, c, y, d, reverse, layout, wp, rp, xwp)
            _store_state(yh, h, seq_lens, d, layout)
            _store_state(yc, c, seq_lens, d, layout)
            continue
        xw = _project(x, w, d)
        g = np.empty((batch, 4 * hs), x.dtype)
        for s in range(seq):
            gemm(h, r[d].T, g)
            for b in range(batch):
                t = _time(s, seq_lens[b], reverse)
                if t < 0:
                    continue
                xr, gb, hb, cb = xw[_row(t, b, seq, batch, layout)], g[b], h[b], c[b]
                for j in range(4 * hs):
                    gb[j] += xr[j] + bsum[j]
                for j in range(hs):
                    i = _act(gb[j] + pd[j] * cb[j], clip, codes, alphas, betas, d, 0)
                    if input_forget:
                        f = 1.0 - i
                    else:
                        f = _act(gb[2 * hs + j] + pd[2 * hs + j] * cb[j], clip, codes, alphas, betas, d, 0)
                    cn = f * cb[j] + i * _act(gb[3 * hs + j], clip, codes, alphas, betas, d, 1)
                    o = _act(gb[hs + j] + pd[hs + j] * cn, clip, codes, alphas, betas, d, 0)
                    cb[j] = cn
                    hb[j] = o * _act(cn, np.inf, codes, alphas, betas, d, 2)
                _store_y(y, hb, t, d, b, layout)
        _store_state(yh, h, seq_lens, d, layout)
        _store_state(yc, c, seq_lens, d, layout)
