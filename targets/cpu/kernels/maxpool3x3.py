"""3x3 MaxPool over float32 NCHW planes (max_pool, max_pool_par): window_ir.py's plane kernel
with MaxPool's rule for its nine taps (vecir.Vec.window_max), bound as a C callback by
symbol (SYMBOL) apart from the depthwise conv's (window3x3.py), so a model with a pool and
no such conv (resnets) compiles the pool's loop nests only: light_resnet50's cold compile
spent 5.5 s on the two together."""
import numpy as np
from numba import prange, types

from .jit import callback, njit
from .share import chunk_count, counters, next_chunk
from .vecir import EPI_MAX
from .window_ir import make_plane

_plane = make_plane(pool=True)

_I = types.intp
# (x, H, W, out, OH, OW, stride, pad top, pad left, planes t0 .. t1) as integers and addresses
SIGNATURE = types.int64(*(_I,) * 11)
SYMBOL = "onnxjit_maxpool3x3_v1"


@callback(SYMBOL, SIGNATURE, error_model="numpy")
def planes(xp, H, W, op, OH, OW, s, ph, pw, t0, t1):
    """Planes t0 .. t1 of the pool, as a C callback."""
    for t in range(t0, t1):
        _plane(xp + 4 * t * H * W, H, W, 0, op + 4 * t * OH * OW, OH, OW, s, ph, pw, 0,
               np.float32(0), np.float32(0), np.float32(0), EPI_MAX)
    return 0


_call = types.ExternalFunction(SYMBOL, SIGNATURE)


@njit(cache=True, error_model="numpy")
def max_pool(x, out, strides, pads_begin):
    """2-D 3x3 MaxPool of float32 x (N, C, 1, H, W), strides (s, s) with s 1 or 2, dilation 1,
    no Indices (lower_nn._max_pool3x3), into out: the kernel's planes with MaxPool's rule
    (vecir.Vec.window_max; a window with no tap inside gives 0, as nn.max_pool)."""
    _pool_range(np.ascontiguousarray(x), out, strides, pads_begin, 0, x.shape[0] * x.shape[1])


@njit(cache=True, error_model="numpy", parallel=True)
def max_pool_par(x, out, strides, pads_begin, threads):
    """max_pool with its N*C planes shared out in claimed chunks (share.py)."""
    x = np.ascontiguousarray(x)
    T = x.shape[0] * x.shape[1]
    parts = min(T, threads)
    chunks = chunk_count(parts, T)
    nxt = counters(parts, chunks)
    for p in prange(parts):       # each thread its own planes first, then what another has not started (share.py)
        c = next_chunk(nxt, p, parts, chunks)
        while c >= 0:
            _pool_range(x, out, strides, pads_begin, c * T // chunks, (c + 1) * T // chunks)
            c = next_chunk(nxt, p, parts, chunks)


@njit(cache=True, error_model="numpy")
def _pool_range(x, out, strides, pads_begin, t0, t1):
    """Planes t0 .. t1 of max_pool (x C-contiguous float32; out C-contiguous, checked)."""
    if x.itemsize != 4 or out.itemsize != 4 or not out.flags.c_contiguous or out.shape[:2] != x.shape[:2]:
        raise ValueError("max_pool: float32 x and a C-contiguous out of its images and channels")
    _call(x.ctypes.data, x.shape[3], x.shape[4], out.ctypes.data, out.shape[3], out.shape[4], strides[1],
          pads_begin[1], pads_begin[2], t0, t1)
    return x.size
