"""float32 pointwise convolutions (1x1, stride 1, no pad, group 1, 2-D) as the implicit GEMM over
the image itself: the channels' planes are the GEMM's right operand, read in place, bias,
residual and a clamp applied in the micro-kernel's registers, other activations over each
channel's rows after.

Why its own module: nn.conv_gemm32's C callback holds every path of the conv GEMM (implicit
GEMM, im2col, wide rows, 3-D) and compiles them all wherever a model has one conv on it,
~17 s of mobilenetv2_half's cold compile for convs that are all pointwise; conv_gemm_par's
bands add their own. The same arithmetic as conv_gemm's pointwise path and conv_gemm_par's
row bands, compiled alone; on small planes the bands are of output channels (conv_par)."""
import numpy as np
from numba import prange

from .blas import gemm_implicit
from .jit import njit
from .nn import _clamp_bounds, _epilogue
from .sgemm import MR
from .share import CHANNEL_SPLIT_MAX


@njit(cache=True, error_model="numpy")
def _rows(x, w, b, out, res, act, alpha, beta, offs, oh0, oh1, m0, m1):
    """Output rows oh0 .. oh1 of channels m0 .. m1 of every image of out (N, M, 1, H, W) =
    act(w (M, C) @ x + b [+ res]); offs: the channels' planes' offsets (_operands)."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    M, P = out.shape[1], H * W
    xf = x.reshape(N, C * P)
    w2 = w.reshape(M, C)[m0:m1]
    out3 = out.reshape(N, M, P)
    res3 = res.reshape(N, M, P) if res.size > 0 else res.reshape(1, 0, 0)
    clamped, lo, hi = _clamp_bounds(act, alpha, beta, out)
    for n in range(N):
        o2 = out3[n, m0:m1, oh0 * W:oh1 * W]
        r2 = res3[n, m0:m1, oh0 * W:oh1 * W] if res.size > 0 else res3[0]
        if clamped:
            gemm_implicit(w2, xf[n, oh0 * W:], offs, o2, b[m0:m1], r2, lo, hi)
            continue
        gemm_implicit(w2, xf[n, oh0 * W:], offs, o2, b[:0], r2[:0], lo, hi)
        for m in range(m0, m1):
            o = out3[n, m, oh0 * W:oh1 * W]     # typed contiguous (a row of o2 is not)
            _epilogue(o, b[m], res3[n, m, oh0 * W:oh1 * W] if res.size > 0 else o[:0], act, alpha, beta)


@njit(cache=True, error_model="numpy")
def _operands(x, w, b, out, res):
    """(x, w, b, res) contiguous float32, the shapes checked, and the implicit GEMM's row offsets
    (each channel's plane: B's rows are the image itself), made once for every band."""
    if (x.itemsize != 4 or w.itemsize != 4 or b.itemsize != 4 or out.itemsize != 4 or res.itemsize != 4
            or x.shape[2] != 1 or out.shape[2] != 1 or w.size != out.shape[1] * x.shape[1] or b.size != out.shape[1]
            or out.shape[0] != x.shape[0] or out.shape[3] != x.shape[3] or out.shape[4] != x.shape[4]
            or not out.flags.c_contiguous or (res.size > 0 and res.shape != out.shape)):
        raise ValueError("pointwise conv: operands do not agree")
    offs = np.arange(x.shape[1]) * (x.shape[3] * x.shape[4])
    return np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(b), np.ascontiguousarray(res), offs


@njit(cache=True, error_model="numpy")
def conv(x, w, b, out, res, act, alpha, beta):
    """out = act(conv1x1(x, w) + b [+ res]) for x (N, C, 1, H, W), w (M, C, 1, 1, 1), out (N, M, 1,
    H, W) float32, act one of nn's ACT_* codes (lower_nn._pointwise says which convs)."""
    x, w, b, res, offs = _operands(x, w, b, out, res)
    _rows(x, w, b, out, res, act, alpha, beta, offs, 0, out.shape[3], 0, out.shape[1])



@njit(cache=True, error_model="numpy", parallel=True)
def conv_par(x, w, b, out, res, act, alpha, beta, parts):
    """conv in `parts` bands, one a thread: of output rows, or of output channels (whole tiles of
    rows of A) on a small plane (CHANNEL_SPLIT_MAX)."""
    x, w, b, res, offs = _operands(x, w, b, out, res)
    H, M = out.shape[3], out.shape[1]
    by_channels = H * out.shape[4] <= CHANNEL_SPLIT_MAX
    panels = (M + MR - 1) // MR
    for p in prange(parts):
        if by_channels:
            _rows(x, w, b, out, res, act, alpha, beta, offs, 0, H, min(M, p * panels // parts * MR),
                  min(M, (p + 1) * panels // parts * MR))
        else:
            _rows(x, w, b, out, res, act, alpha, beta, offs, p * H // parts, (p + 1) * H // parts, 0, M)
