"""Hand-written Numba CPU kernels for ONNX spatial / normalization ops.

Conventions shared by every kernel here:

* Spatial kernels take rank-5 arrays ``(N, C, D, H, W)``.  The caller turns 1-D and
  2-D problems into 3-D ones by inserting size-1 spatial dims at the front
  (1-D: ``(N, C, 1, 1, W)``, 2-D: ``(N, C, 1, H, W)``), so one implementation serves
  1-D/2-D/3-D.  Spatial parameters are 3-tuples of ints (pad with kernel 1,
  stride 1, dilation 1, pad 0 for the inserted dims).
* All arrays must be C-contiguous; float inputs are float32 or float64 and ``out``
  has the same dtype as ``x``.  Kernels write into the caller's preallocated
  ``out`` (already sized, e.g. via ``compiler/spatial.py``) and return nothing.
* GEMMs go through ``np.dot`` (BLAS via scipy) in the array dtype; reductions
  (pool sums, norms) are done in float64 and stored in the array dtype.
"""

import numpy as np
from numba import njit

__all__ = [
    "conv",
    "conv_transpose",
    "max_pool",
    "avg_pool",
    "lp_pool",
    "global_pool",
    "lrn",
    "instance_norm",
]


@njit(cache=True, error_model="numpy")
def _valid_range(count, step, offset, size):
    """Return [lo, hi): the j in [0, count) with 0 <= j*step + offset < size (step >= 1)."""
    if offset >= 0:
        lo = 0
    else:
        lo = (-offset + step - 1) // step
    last = size - 1 - offset
    if last < 0:
        return 0, 0
    hi = min(count, last // step + 1)
    if lo > hi:
        lo = hi
    return lo, hi


# ----------------------------------------------------------------------------- Conv


@njit(cache=True, error_model="numpy")
def _unfold(x, n, c0, cg, kernel, strides, pads_begin, dilations, out_sp, col):
    """Copy the in-bounds taps of x[n, c0:c0+cg] into col[(c,kd,kh,kw), (od,oh,ow)].

    Padding taps are not written: col is zero-filled once by the caller, and the
    set of padding taps is the same for every image and group.
    """
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    kD, kH, kW = kernel
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    OD, OH, OW = out_sp
    row = 0
    for c in range(cg):
        xc = x[n, c0 + c]
        for kd in range(kD):
            offd = kd * dd - pd
            d_lo, d_hi = _valid_range(OD, sd, offd, D)
            for kh in range(kH):
                offh = kh * dh - ph
                h_lo, h_hi = _valid_range(OH, sh, offh, H)
                for kw in range(kW):
                    offw = kw * dw - pw
                    w_lo, w_hi = _valid_range(OW, sw, offw, W)
                    dst = col[row]
                    for od in range(d_lo, d_hi):
                        xd = xc[od * sd + offd]
                        for oh in range(h_lo, h_hi):
                            src = xd[oh * sh + offh]
                            base = (od * OH + oh) * OW
                            for ow in range(w_lo, w_hi):
                                dst[base + ow] = src[ow * sw + offw]
                    row += 1


@njit(cache=True, error_model="numpy")
def _pad_image(x, n, c0, cg, pads_begin, xp):
    """Copy x[n, c0:c0+cg] into the interior of the zero-bordered flat buffer xp (cg, Dp, Hp, Wp)."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    pd, ph, pw = pads_begin
    Dp, Hp, Wp = xp.shape[1], xp.shape[2], xp.shape[3]
    for c in range(cg):
        xc = x[n, c0 + c]
        for i_d in range(max(0, -pd), min(D, Dp - pd)):
            for i_h in range(max(0, -ph), min(H, Hp - ph)):
                src = xc[i_d, i_h]
                dst = xp[c, i_d + pd, i_h + ph]
                for i_w in range(max(0, -pw), min(W, Wp - pw)):
                    dst[i_w + pw] = src[i_w]


@njit(cache=True, error_model="numpy")
def _unfold_wide(xp_flat, cg, kernel, sd, dilations, dims_p, OD, OH, col):
    """im2col for H/W stride 1 on a padded image: each (row, od) is one contiguous run.

    col[(c,kd,kh,kw), (od, oh, ow')] = xp[c, od*sd + kd*dd, oh + kh*dh, ow' + kw*dw] for
    ow' in [0, Wp): the "wide" output has Wp columns per row, of which the first OW are real
    (the rest read the next row and are cropped after the GEMM).  xp_flat needs
    (kW-1)*dw elements of slack after the last image element.
    """
    kD, kH, kW = kernel
    dd, dh, dw = dilations
    Dp, Hp, Wp = dims_p
    run = OH * Wp
    row = 0
    for c in range(cg):
        cbase = c * Dp * Hp * Wp
        for kd in range(kD):
            for kh in range(kH):
                for kw in range(kW):
                    dst = col[row]
                    for od in range(OD):
                        src0 = cbase + ((od * sd + kd * dd) * Hp + kh * dh) * Wp + kw * dw
                        dst0 = od * run
                        for j in range(run):
                            dst[dst0 + j] = xp_flat[src0 + j]
                    row += 1


@njit(cache=True, error_model="numpy")
def _add_bias(out3, b):
    """out3[n, m, :] += b[m] (skips zero biases)."""
    for n in range(out3.shape[0]):
        for m in range(out3.shape[1]):
            bm = b[m]
            if bm != 0:
                row = out3[n, m]
                for p in range(row.shape[0]):
                    row[p] += bm


@njit(cache=True, error_model="numpy")
def conv(x, w, b, out, strides, pads_begin, dilations, group):
    """ONNX Conv as per-(group, image) im2col + BLAS GEMM; out[n, m] = sum w * x + b[m].

    Three paths: 1x1/stride 1/no pad uses x directly as the GEMM operand; H/W stride 1
    with little width padding builds im2col from a padded copy in long contiguous runs
    ("wide" rows, cropped after the GEMM); anything else uses the general im2col.
    """
    N, C, D, H, W = x.shape
    M = w.shape[0]
    kD, kH, kW = w.shape[2], w.shape[3], w.shape[4]
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    cg = C // group
    mg = M // group
    P = OD * OH * OW
    K = cg * kD * kH * kW
    w2 = w.reshape(M, K)
    out3 = out.reshape(N, M, P)
    # Padded extent actually read (ends may be cut, e.g. by a floor in the output size).
    Dp = (OD - 1) * sd + (kD - 1) * dd + 1
    Hp = (OH - 1) + (kH - 1) * dh + 1
    Wp = OW + (kW - 1) * dw
    pointwise = (kD * kH * kW == 1 and sd == 1 and sh == 1 and sw == 1
                 and pd == 0 and ph == 0 and pw == 0 and OD == D and OH == H and OW == W)
    wide = sh == 1 and sw == 1 and Wp * 8 <= OW * 9
    if pointwise:
        # 1x1, stride 1, no pad: the input image already is the GEMM operand.
        x3 = x.reshape(N, C, D * H * W)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                np.dot(wg, x3[n, g * cg:(g + 1) * cg], out3[n, g * mg:(g + 1) * mg])
    elif wide:
        slack = (kW - 1) * dw
        xp_flat = np.zeros(cg * Dp * Hp * Wp + slack, dtype=x.dtype)
        xp = xp_flat[:cg * Dp * Hp * Wp].reshape(cg, Dp, Hp, Wp)
        Pw = OD * OH * Wp
        col = np.empty((K, Pw), dtype=x.dtype)
        tmp = np.empty((mg, Pw), dtype=x.dtype)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                _pad_image(x, n, g * cg, cg, pads_begin, xp)
                _unfold_wide(xp_flat, cg, (kD, kH, kW), sd, dilations, (Dp, Hp, Wp), OD, OH, col)
                np.dot(wg, col, tmp)
                for m in range(mg):
                    src = tmp[m]
                    dst = out3[n, g * mg + m]
                    for r in range(OD * OH):
                        for ow in range(OW):
                            dst[r * OW + ow] = src[r * Wp + ow]
    else:
        col = np.zeros((K, P), dtype=x.dtype)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                _unfold(x, n, g * cg, cg, (kD, kH, kW), strides, pads_begin,
                        dilations, (OD, OH, OW), col)
                np.dot(wg, col, out3[n, g * mg:(g + 1) * mg])
    _add_bias(out3, b)


# -------------------------------------------------------------------- ConvTranspose


@njit(cache=True, error_model="numpy")
def _fold_add(col, out, n, m0, mg, kernel, strides, pads_begin, dilations, in_sp):
    """Scatter-add col[(m,kd,kh,kw), (id,ih,iw)] into out[n, m0+m] at o = i*s - p + k*d."""
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    kD, kH, kW = kernel
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    D, H, W = in_sp
    row = 0
    for m in range(mg):
        om = out[n, m0 + m]
        for kd in range(kD):
            offd = kd * dd - pd
            d_lo, d_hi = _valid_range(D, sd, offd, OD)
            for kh in range(kH):
                offh = kh * dh - ph
                h_lo, h_hi = _valid_range(H, sh, offh, OH)
                for kw in range(kW):
                    offw = kw * dw - pw
                    w_lo, w_hi = _valid_range(W, sw, offw, OW)
                    src = col[row]
                    for i_d in range(d_lo, d_hi):
                        od_ = om[i_d * sd + offd]
                        for i_h in range(h_lo, h_hi):
                            dst = od_[i_h * sh + offh]
                            base = (i_d * H + i_h) * W
                            for i_w in range(w_lo, w_hi):
                                dst[i_w * sw + offw] += src[base + i_w]
                    row += 1


@njit(cache=True, error_model="numpy")
def conv_transpose(x, w, b, out, strides, pads_begin, dilations, group):
    """ONNX ConvTranspose as BLAS GEMM (W^T x) followed by col2im scatter-add into out (pre-set to bias)."""
    N, C, D, H, W = x.shape
    mg = w.shape[1]
    M = mg * group
    kD, kH, kW = w.shape[2], w.shape[3], w.shape[4]
    cg = C // group
    kk = kD * kH * kW
    P_in = D * H * W
    x3 = x.reshape(N, C, P_in)
    w2 = w.reshape(C, mg * kk)
    out3 = out.reshape(N, M, out.shape[2] * out.shape[3] * out.shape[4])
    for n in range(N):
        for m in range(M):
            out3[n, m, :] = b[m]
    col = np.empty((mg * kk, P_in), dtype=x.dtype)
    for g in range(group):
        wt = np.ascontiguousarray(w2[g * cg:(g + 1) * cg].T)  # (mg*kk, cg)
        for n in range(N):
            np.dot(wt, x3[n, g * cg:(g + 1) * cg], col)
            _fold_add(col, out, n, g * mg, mg, (kD, kH, kW), strides, pads_begin,
                      dilations, (D, H, W))


# ------------------------------------------------------------------------- Pooling


@njit(cache=True, error_model="numpy")
def max_pool(x, out, indices, kernel, strides, pads_begin, dilations, storage_order):
    """ONNX MaxPool (padding ignored, NaN never wins over an earlier value) plus the Indices output.

    ``indices`` is int64 shaped like ``out``; pass a size-0 rank-5 int64 array to skip it.
    Index = flat position in x: row-major over (n, c, d, h, w) when storage_order == 0;
    with storage_order == 1 the spatial part is column-major (d + h*D + w*D*H) while n, c
    stay row-major, which reproduces the ONNX 2-D formula (c*H*W + h + w*H) and, for the
    1-D/2-D layouts described in the module docstring, the onnx.reference 1-D/3-D ones.
    A window with no in-bounds element yields 0 and index -1 (as onnx.reference 2-D does).
    """
    N, C, D, H, W = x.shape
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    kD, kH, kW = kernel
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    want_idx = indices.size > 0
    zero = out.dtype.type(0)
    for n in range(N):
        for c in range(C):
            xc = x[n, c]
            base = (n * C + c) * D * H * W
            for od in range(OD):
                d0 = od * sd - pd
                d_lo, d_hi = _valid_range(kD, dd, d0, D)
                for oh in range(OH):
                    h0 = oh * sh - ph
                    h_lo, h_hi = _valid_range(kH, dh, h0, H)
                    for ow in range(OW):
                        w0 = ow * sw - pw
                        w_lo, w_hi = _valid_range(kW, dw, w0, W)
                        found = False
                        best = zero
                        bd = -1
                        bh = -1
                        bw = -1
                        for kd in range(d_lo, d_hi):
                            i_d = d0 + kd * dd
                            for kh in range(h_lo, h_hi):
                                i_h = h0 + kh * dh
                                for kw in range(w_lo, w_hi):
                                    i_w = w0 + kw * dw
                                    v = xc[i_d, i_h, i_w]
                                    if not found or v > best:
                                        found = True
                                        best = v
                                        bd = i_d
                                        bh = i_h
                                        bw = i_w
                        out[n, c, od, oh, ow] = best
                        if want_idx:
                            if not found:
                                idx = -1
                            elif storage_order == 0:
                                idx = base + (bd * H + bh) * W + bw
                            else:
                                idx = base + bd + bh * D + bw * D * H
                            indices[n, c, od, oh, ow] = idx


@njit(cache=True, error_model="numpy")
def avg_pool(x, out, kernel, strides, pads_begin, pads_end, dilations, count_include_pad):
    """ONNX AveragePool: mean over in-bounds taps, or over taps within [-pads_begin, L+pads_end) if count_include_pad.

    Taps beyond ``L + pads_end`` (possible with ceil_mode) are never counted.
    """
    N, C, D, H, W = x.shape
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    kD, kH, kW = kernel
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    ed, eh, ew = pads_end
    dd, dh, dw = dilations
    for od in range(OD):
        d0 = od * sd - pd
        d_lo, d_hi = _valid_range(kD, dd, d0, D)
        d_pad_lo, d_pad_hi = _valid_range(kD, dd, od * sd, D + pd + ed)
        for oh in range(OH):
            h0 = oh * sh - ph
            h_lo, h_hi = _valid_range(kH, dh, h0, H)
            h_pad_lo, h_pad_hi = _valid_range(kH, dh, oh * sh, H + ph + eh)
            for ow in range(OW):
                w0 = ow * sw - pw
                w_lo, w_hi = _valid_range(kW, dw, w0, W)
                w_pad_lo, w_pad_hi = _valid_range(kW, dw, ow * sw, W + pw + ew)
                if count_include_pad:
                    count = (d_pad_hi - d_pad_lo) * (h_pad_hi - h_pad_lo) * (w_pad_hi - w_pad_lo)
                else:
                    count = (d_hi - d_lo) * (h_hi - h_lo) * (w_hi - w_lo)
                for n in range(N):
                    for c in range(C):
                        xc = x[n, c]
                        acc = 0.0
                        for kd in range(d_lo, d_hi):
                            for kh in range(h_lo, h_hi):
                                row = xc[d0 + kd * dd, h0 + kh * dh]
                                for kw in range(w_lo, w_hi):
                                    acc += row[w0 + kw * dw]
                        out[n, c, od, oh, ow] = acc / count


@njit(cache=True, error_model="numpy")
def lp_pool(x, out, kernel, strides, pads_begin, dilations, p):
    """ONNX LpPool: (sum over in-bounds taps of |x|^p)^(1/p); padding contributes 0."""
    N, C, D, H, W = x.shape
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    kD, kH, kW = kernel
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    pf = float(p)
    inv_p = 1.0 / pf
    for n in range(N):
        for c in range(C):
            xc = x[n, c]
            for od in range(OD):
                d0 = od * sd - pd
                d_lo, d_hi = _valid_range(kD, dd, d0, D)
                for oh in range(OH):
                    h0 = oh * sh - ph
                    h_lo, h_hi = _valid_range(kH, dh, h0, H)
                    for ow in range(OW):
                        w0 = ow * sw - pw
                        w_lo, w_hi = _valid_range(kW, dw, w0, W)
                        acc = 0.0
                        for kd in range(d_lo, d_hi):
                            for kh in range(h_lo, h_hi):
                                row = xc[d0 + kd * dd, h0 + kh * dh]
                                for kw in range(w_lo, w_hi):
                                    v = abs(float(row[w0 + kw * dw]))
                                    if pf == 2.0:
                                        acc += v * v
                                    elif pf == 1.0:
                                        acc += v
                                    else:
                                        acc += v ** pf
                        if pf == 2.0:
                            res = np.sqrt(acc)
                        elif pf == 1.0:
                            res = acc
                        else:
                            res = acc ** inv_p
                        out[n, c, od, oh, ow] = res


@njit(cache=True, error_model="numpy")
def global_pool(x, out, is_max):
    """GlobalMaxPool (NaN propagates, like np.max) or GlobalAveragePool over x (N, C, S) into out (N, C)."""
    N, C, S = x.shape
    for n in range(N):
        for c in range(C):
            row = x[n, c]
            if is_max:
                best = row[0]
                for s in range(1, S):
                    v = row[s]
                    if v > best or v != v:
                        best = v
                        if v != v:
                            break
                out[n, c] = best
            else:
                acc = 0.0
                for s in range(S):
                    acc += row[s]
                out[n, c] = acc / S


# ------------------------------------------------------------------- Normalization


@njit(cache=True, error_model="numpy")
def lrn(x, out, size, alpha, beta, bias):
    """ONNX LRN over channels of x (N, C, S): y = x / (bias + alpha/size * sum_{c' near c} x^2)^beta."""
    N, C, S = x.shape
    lo_off = (size - 1) // 2          # floor((size-1)/2) channels before
    hi_off = size - 1 - lo_off        # ceil((size-1)/2) channels after
    scale = alpha / size
    for n in range(N):
        xn = x[n]
        for c in range(C):
            c_lo = max(0, c - lo_off)
            c_hi = min(C - 1, c + hi_off)
            for s in range(S):
                sq = 0.0
                for cc in range(c_lo, c_hi + 1):
                    v = float(xn[cc, s])
                    sq += v * v
                out[n, c, s] = xn[c, s] / (bias + scale * sq) ** beta


@njit(cache=True, error_model="numpy")
def instance_norm(x, scale, bias, out, eps):
    """ONNX InstanceNormalization on x (N, C, S): per (n, c) y = scale[c] * (x - mean) / sqrt(var + eps) + bias[c]."""
    N, C, S = x.shape
    for n in range(N):
        for c in range(C):
            row = x[n, c]
            acc = 0.0
            for s in range(S):
                acc += row[s]
            mean = acc / S
            acc = 0.0
            for s in range(S):
                d = row[s] - mean
                acc += d * d
            inv_std = 1.0 / np.sqrt(acc / S + eps)
            a = scale[c] * inv_std
            sh = bias[c] - mean * a
            dst = out[n, c]
            for s in range(S):
                dst[s] = row[s] * a + sh
