"""Integer kernels for the quantized ONNX ops.

* (De)quantization views x as (outer, D, inner) around the quantized axis; a
  scale or zero point is (outer or 1, S, inner or 1) with S = 1 (per tensor),
  D (per axis) or ceil(D / block) (blocked).
* Products subtract the zero points into int32 operands and accumulate in an
  int32 GEMM (BLAS is float-only); QLinear* then requantize each sum with
  round-half-to-even and saturation, the multiplier taken in the scale dtype
  as the ONNX reference does.
* Convolutions take rank-5 (N, C, D, H, W) views and 3-tuples, like nn.py, and
  unfold (im2col) each image and group into an int32 matrix; padding taps are
  0 after the zero point is subtracted.
"""
import numpy as np

from .jit import njit


@njit(inline="always")
def _param_index(p, o, d, i, block):
    return (o if p.shape[0] > 1 else 0), (d // block if p.shape[1] > 1 else 0), (i if p.shape[2] > 1 else 0)


@njit(inline="always")
def _saturate(v, lo, hi):
    return min(max(v, lo), hi)


@njit(cache=True, error_model="numpy")
def quantize(x, scale, zero, out, block, lo, hi, integer):
    """out = saturate(rint(x / scale) + zero) on (outer, D, inner) views; for
    a float type (integer=False) x / scale + zero, which the caller rounds."""
    for o in range(x.shape[0]):
        for d in range(x.shape[1]):
            for i in range(x.shape[2]):
                so, sd, si = _param_index(scale, o, d, i, block)
                zo, zd, zi = _param_index(zero, o, d, i, block)
                q = x[o, d, i] / scale[so, sd, si]
                if integer:
                    out[o, d, i] = _saturate(np.rint(q) + np.float64(zero[zo, zd, zi]), lo, hi)
                else:
                    out[o, d, i] = q + zero[zo, zd, zi]


@njit(cache=True, error_model="numpy")
def dequantize(x, scale, zero, out, block):
    """out = (x - zero) * scale on (outer, D, inner) views; the difference is exact in float64."""
    for o in range(x.shape[0]):
        for d in range(x.shape[1]):
            for i in range(x.shape[2]):
                so, sd, si = _param_index(scale, o, d, i, block)
                zo, zd, zi = _param_index(zero, o, d, i, block)
                out[o, d, i] = (np.float64(x[o, d, i]) - np.float64(zero[zo, zd, zi])) * np.float64(scale[so, sd, si])


@njit(cache=True, error_model="numpy")
def dynamic_quantize(x, y, scale, zero):
    """uint8 quantization with the range of x (widened to hold 0), all in float32 as ONNX says."""
    hi = np.float32(0.0)
    lo = np.float32(0.0)
    for i in range(x.size):
        hi = max(hi, x[i])
        lo = min(lo, x[i])
    s = np.float32(1.0) if hi == lo else np.float32(hi - lo)
    s = s / np.float32(255.0)
    z = np.rint(_saturate(np.float32(0.0) - lo / s, np.float32(0.0), np.float32(255.0)))
    scale[0] = s
    zero[0] = np.uint8(z)
    for i in range(x.size):
        y[i] = np.uint8(_saturate(np.rint(x[i] / s) + z, 0.0, 255.0))


# ----------------------------------------------------------------------------- GEMM


@njit(cache=True, error_model="numpy")
def _igemm(a, b, out):
    """out (M, N) int32 = a (M, K) @ b (K, N), both int32: row updates that LLVM vectorizes,
    four output rows per pass so each row of b is loaded once for all four."""
    m, n = a.shape[0], b.shape[1]
    out[:] = 0
    r = 0
    while r + 4 <= m:
        o0, o1, o2, o3 = out[r], out[r + 1], out[r + 2], out[r + 3]
        for k in range(a.shape[1]):
            v0, v1, v2, v3 = a[r, k], a[r + 1, k], a[r + 2, k], a[r + 3, k]
            bk = b[k]
            for c in range(n):
                x = bk[c]
                o0[c] += v0 * x
                o1[c] += v1 * x
                o2[c] += v2 * x
                o3[c] += v3 * x
        r += 4
    for r in range(r, m):
        row = out[r]
        for k in range(a.shape[1]):
            v = a[r, k]
            bk = b[k]
            for c in range(n):
                row[c] += v * bk[c]


@njit(cache=True, error_model="numpy")
def _centered_rows(a, zero):
    """int32 copy of a (B, M, K) minus a zero point per row (zero has 1 or M entries)."""
    res = np.empty(a.shape, np.int32)
    for i in range(a.shape[0]):
        for r in range(a.shape[1]):
            z = np.int32(zero[r if zero.size > 1 else 0])
            for k in range(a.shape[2]):
                res[i, r, k] = np.int32(a[i, r, k]) - z
    return res


@njit(cache=True, error_model="numpy")
def _centered_cols(b, zero):
    """int32 copy of b (B, K, N) minus a zero point per column (zero has 1 or N entries)."""
    res = np.empty(b.shape, np.int32)
    for i in range(b.shape[0]):
        for k in range(b.shape[1]):
            for c in range(b.shape[2]):
                res[i, k, c] = np.int32(b[i, k, c]) - np.int32(zero[c if zero.size > 1 else 0])
    return res


@njit(cache=True, error_model="numpy")
def matmul_integer(a, b, a_zero, b_zero, out, a_index, b_index):
    """out[i] (int32) = (a[a_index[i]] - a_zero) @ (b[b_index[i]] - b_zero) on batched views."""
    a32 = _centered_rows(a, a_zero)
    b32 = _centered_cols(b, b_zero)
    for i in range(out.shape[0]):
        _igemm(a32[a_index[i]], b32[b_index[i]], out[i])


@njit(inline="always")
def _multiplier(a_scale, b_scale, y_scale):
    return np.float64(a_scale * b_scale / y_scale)


@njit(cache=True, error_model="numpy")
def qlinear_matmul(a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero, out, a_index, b_index, lo, hi):
    """Quantized MatMul: int32 sums requantized per column (b_scale has 1 or N entries)."""
    a32 = _centered_rows(a, a_zero)
    b32 = _centered_cols(b, b_zero)
    n = out.shape[2]
    acc = np.empty((out.shape[1], n), np.int32)
    mult = np.empty(n, np.float64)
    for c in range(n):
        mult[c] = _multiplier(a_scale[0], b_scale[c if b_scale.size > 1 else 0], y_scale[0])
    z = np.float64(y_zero[0])
    for i in range(out.shape[0]):
        _igemm(a32[a_index[i]], b32[b_index[i]], acc)
        for r in range(acc.shape[0]):
            for c in range(n):
                out[i, r, c] = _saturate(np.rint(np.float64(acc[r, c]) * mult[c]) + z, lo, hi)


# ----------------------------------------------------------------------------- Conv


@njit(cache=True, error_model="numpy")
def _tap_range(n_out, stride, offset, size):
    """[lo, hi): the outputs o with 0 <= o * stride + offset < size."""
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    last = size - 1 - offset
    if last < 0:
        return 0, 0
    hi = min(n_out, last // stride + 1)
    return min(lo, hi), hi


@njit(cache=True, error_model="numpy")
def _unfold(x, n, c0, zero, kernel, strides, pads, dilations, out_sp, col):
    """col[(c, kd, kh, kw), (od, oh, ow)] = x[n, c0 + c, tap] - zero; padding taps stay 0."""
    OD, OH, OW = out_sp
    row = 0
    for c in range(col.shape[0] // (kernel[0] * kernel[1] * kernel[2])):
        xc = x[n, c0 + c]
        for kd in range(kernel[0]):
            fd = kd * dilations[0] - pads[0]
            d_lo, d_hi = _tap_range(OD, strides[0], fd, x.shape[2])
            for kh in range(kernel[1]):
                fh = kh * dilations[1] - pads[1]
                h_lo, h_hi = _tap_range(OH, strides[1], fh, x.shape[3])
                for kw in range(kernel[2]):
                    fw = kw * dilations[2] - pads[2]
                    w_lo, w_hi = _tap_range(OW, strides[2], fw, x.shape[4])
                    dst = col[row]
                    for od in range(d_lo, d_hi):
                        xd = xc[od * strides[0] + fd]
                        for oh in range(h_lo, h_hi):
                            src = xd[oh * strides[1] + fh]
                            base = (od * OH + oh) * OW
                            for ow in range(w_lo, w_hi):
                                dst[base + ow] = np.int32(src[ow * strides[2] + fw]) - zero
                    row += 1


@njit(cache=True, error_model="numpy")
def _conv_sums(x, w, x_zero, w_zero, strides, pads, dilations, group, out_sp, acc):
    """acc (N, M, P) int32: the integer convolution of centered x and w."""
    m, cg = w.shape[0], w.shape[1]
    mg = m // group
    taps = w.shape[2] * w.shape[3] * w.shape[4]
    w32 = _centered_rows(w.reshape((1, m, cg * taps)), w_zero)[0]
    col = np.empty((cg * taps, acc.shape[2]), np.int32)
    kernel = (w.shape[2], w.shape[3], w.shape[4])
    xz = np.int32(x_zero[0])
    for n in range(x.shape[0]):
        for g in range(group):
            col[:] = 0
            _unfold(x, n, g * cg, xz, kernel, strides, pads, dilations, out_sp, col)
            _igemm(w32[g * mg:(g + 1) * mg], col, acc[n, g * mg:(g + 1) * mg])


@njit(cache=True, error_model="numpy")
def conv_integer(x, w, x_zero, w_zero, out, strides, pads, dilations, group):
    """ConvInteger: out (N, M, oD, oH, oW) int32; w_zero has 1 or M entries."""
    out_sp = (out.shape[2], out.shape[3], out.shape[4])
    acc = out.reshape((out.shape[0], out.shape[1], out_sp[0] * out_sp[1] * out_sp[2]))
    _conv_sums(x, w, x_zero, w_zero, strides, pads, dilations, group, out_sp, acc)


@njit(cache=True, error_model="numpy")
def qlinear_conv(x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, bias, out,
                 strides, pads, dilations, group, lo, hi):
    """QLinearConv: int32 sums plus bias, requantized per output channel."""
    out_sp = (out.shape[2], out.shape[3], out.shape[4])
    p = out_sp[0] * out_sp[1] * out_sp[2]
    acc = np.empty((out.shape[0], out.shape[1], p), np.int32)
    _conv_sums(x, w, x_zero, w_zero, strides, pads, dilations, group, out_sp, acc)
    res = out.reshape((out.shape[0], out.shape[1], p))
    z = np.float64(y_zero[0])
    for m in range(out.shape[1]):
        mult = _multiplier(x_scale[0], w_scale[m if w_scale.size > 1 else 0], y_scale[0])
        b = bias[m if bias.size > 1 else 0]
        for n in range(out.shape[0]):
            for i in range(p):
                res[n, m, i] = _saturate(np.rint(np.float64(acc[n, m, i] + b) * mult) + z, lo, hi)
