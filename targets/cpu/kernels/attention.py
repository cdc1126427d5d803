"""LinearAttention's recurrence (ONNX opset 27), token by token as the spec states it.

The state lives in `state` (its dtype: float32 for half models, as the reference
accumulates); reads and sums of q^T S and S^T k accumulate in float64."""
import numpy as np

from .jit import njit


@njit(cache=True, error_model="numpy")
def linear_attention(q, k, v, past, decay, beta, out, state, scale, gated, delta):
    """q (B, T, Hq, dk), k (B, T, Hkv, dk), v (B, T, Hkv, dv), past (B, Hkv, dk, dv)
    or size 0 (zeros), decay (B, T, Hkv, dk or 1), beta (B, T, Hkv or 1) (size 0
    when unused); out (B, T, Hq, dv), state (B, Hkv, dk, dv) is the present state.
    Query head h reads KV head h // (Hq / Hkv)."""
    nb, nt, hq, dk = q.shape
    hkv, dv = v.shape[2], v.shape[3]
    group = hq // hkv
    if past.size:
        state[...] = past
    else:
        state[...] = 0
    u = np.empty(dv, np.float64)
    for b in range(nb):
        for t in range(nt):
            for h in range(hkv):
                s = state[b, h]
                if gated:
                    per_dim = decay.shape[3] > 1
                    for j in range(dk):
                        g = np.exp(decay[b, t, h, j if per_dim else 0])
                        for m in range(dv):
                            s[j, m] *= g
                for m in range(dv):
                    u[m] = v[b, t, h, m]
                if delta:
                    bt = beta[b, t, h if beta.shape[2] > 1 else 0]
                    for m in range(dv):
                        r = 0.0
                        for j in range(dk):
                            r += np.float64(s[j, m]) * k[b, t, h, j]
                        u[m] = bt * (u[m] - r)
                for j in range(dk):
                    kj = k[b, t, h, j]
                    for m in range(dv):
                        s[j, m] += kj * u[m]
                for hh in range(h * group, (h + 1) * group):
                    for m in range(dv):
                        acc = 0.0
                        for j in range(dk):
                            acc += np.float64(q[b, t, hh, j]) * s[j, m]
                        out[b, t, hh, m] = scale * acc
