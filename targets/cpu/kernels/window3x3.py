"""3x3 depthwise convolution over float32 NCHW planes (conv, conv_par), in vectors along each
output row: window_ir.py's kernel (the why and how are there), bound as a C callback by
symbol (SYMBOL) like the GEMM in sgemm.py, compiled once."""
import numpy as np
from numba import carray, prange, types

from .jit import callback, njit
from .nn import ACT_CLIP, ACT_HARDSWISH, ACT_NONE, ACT_RELU, _activate, _operands32
from .sgemm import voidptr
from .share import chunk_count, counters, next_chunk
from .vecir import EPI_CLAMP, EPI_HARDSWISH, EPI_NONE
from .window_ir import make_plane

_plane = make_plane(pool=False)

_I = types.intp
# (x, N, C, H, W, w, M, b, out, OH, OW, res (0: none), stride, pad top, pad left, planes t0 .. t1
# over N*M, EPI_* code, lo, hi) as integers and addresses, the clamp bounds as float32
SIGNATURE = types.int64(*(_I,) * 18, types.float32, types.float32)
SYMBOL = "onnxjit_window3x3_v1"


@callback(SYMBOL, SIGNATURE, error_model="numpy")
def planes(xp, N, C, H, W, wp, M, bp, op, OH, OW, rp, s, ph, pw, t0, t1, epi, lo, hi):
    """Planes t0 .. t1 (over N*M) of a depthwise conv with M // C filters a channel, as a C
    callback (its body here, not in an njit function it calls: that one compiled twice, alone
    and again linked into the callback, 1.3 s of a cold compile)."""
    mult = M // C
    b = carray(voidptr(bp), M, np.float32)
    for t in range(t0, t1):
        m = t % M
        src = xp + 4 * ((t // M) * C + m // mult) * H * W
        _plane(src, H, W, wp + 4 * 9 * m, op + 4 * t * OH * OW, OH, OW, s, ph, pw,
               rp + 4 * t * OH * OW if rp != 0 else 0, b[m], lo, hi, epi)
    return 0


_call = types.ExternalFunction(SYMBOL, SIGNATURE)


@njit(cache=True, error_model="numpy")
def _range(x, w, out, strides, pads_begin, t0, t1, b, res, act, alpha, beta):
    """Planes t0 .. t1 (over N*M) through the kernel (float32 operands as nn._operands32 leaves
    them); the activations it does not apply in registers run over each plane after, while it
    is in L1."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    M, OH, OW = out.shape[1], out.shape[3], out.shape[4]
    post = False
    if act == ACT_RELU:
        epi, lo, hi = EPI_CLAMP, np.float32(0), np.float32(np.inf)
    elif act == ACT_CLIP:
        epi, lo, hi = EPI_CLAMP, np.float32(alpha), np.float32(beta)
    else:
        epi, lo, hi = EPI_HARDSWISH if act == ACT_HARDSWISH else EPI_NONE, np.float32(-np.inf), np.float32(np.inf)
        post = act != ACT_HARDSWISH and act != ACT_NONE
    step = 1 if post else max(1, t1 - t0)
    flat = out.reshape(-1)
    rp = res.ctypes.data if res.size > 0 else 0
    for t in range(t0, t1, step):
        _call(x.ctypes.data, N, C, H, W, w.ctypes.data, M, b.ctypes.data, out.ctypes.data, OH, OW, rp,
              strides[1], pads_begin[1], pads_begin[2], t, min(t + step, t1), epi, lo, hi)
        if post:
            _activate(flat[t * OH * OW:(t + 1) * OH * OW], np.float32(0), act, alpha, beta)
    return x.size + w.size + b.size + res.size    # the operands stay alive through the calls


@njit(cache=True, error_model="numpy")
def conv(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """A float32 2-D 3x3 depthwise conv (one input channel a group, dilation 1, strides (1, 1) or
    (2, 2): lower_nn._window3x3_conv) with its epilogue, on one thread; nn.conv_fused's
    arguments (out C-contiguous, the others copied where they are not)."""
    x, w, b, res = _operands32(x, w, b, out, res)
    _range(x, w, out, strides, pads_begin, 0, x.shape[0] * out.shape[1], b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_par(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads):
    """conv with its N*M planes shared out in claimed chunks (share.py)."""
    x, w, b, res = _operands32(x, w, b, out, res)
    T = x.shape[0] * out.shape[1]
    parts = min(T, threads)
    chunks = chunk_count(parts, T)
    nxt = counters(parts, chunks)
    for p in prange(parts):       # each thread its own planes first, then what another has not started (share.py)
        c = next_chunk(nxt, p, parts, chunks)
        while c >= 0:
            _range(x, w, out, strides, pads_begin, c * T // chunks, (c + 1) * T // chunks, b, res, act, alpha, beta)
            c = next_chunk(nxt, p, parts, chunks)
