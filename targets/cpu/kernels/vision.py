"""Hand-written Numba CPU kernels for the vision ops: GridSample, AffineGrid,
Col2Im, DeformConv, RoiAlign, MaxUnpool. Edge cases follow onnx.reference.

Calling conventions (all arrays C-contiguous; r = number of spatial dims;
spatial int vectors are int64 arrays in the tensors' D, H, W order):

grid_sample(x3, dims, grid3, out3, mode, padding, align)
    x3 = X.reshape(N, C, prod(dims)); grid3 = grid.reshape(N, P, r) (component 0
    is the last dim, as in ONNX); out3 (N, C, P). mode 0 nearest, 1 linear,
    2 cubic; padding 0 zeros, 1 border, 2 reflection.
affine_grid(theta3, dims, out3, align)
    theta3 (N, r, r + 1); out3 = grid.reshape(N, prod(dims), r).
col2im(x4, img, block, ncol, strides, pads, dil, out3)
    x4 = X.reshape(N, C, prod(block), prod(ncol)); out3 = Y.reshape(N, C, prod(img)).
deform_conv(x, w, offset, mask, bias, out, strides, pads, dil, group, offset_group)
    2-D: x (N, C, H, W), w (OC, C / group, KH, KW), offset (N, OG, KH, KW, 2, OH, OW),
    mask (N, OG, KH, KW, OH, OW), bias (OC,), out (N, OC, OH, OW); strides, pads
    (begin), dil are 2-tuples.
roi_align(x, rois, batch, out, scale, sampling_ratio, half_pixel, is_max)
    x (N, C, H, W), rois (R, 4) as (x1, y1, x2, y2), batch (R,), out (R, C, OH, OW).
max_unpool(x, idx, full, oshape, out)
    x, idx, out flat; full = the shape the indices address, oshape the output's
    (int64, rank of X): values land at the same coordinates, those outside dropped.
"""
import math

import numpy as np

from .blas import gemm
from .jit import njit

_JIT = dict(cache=True, error_model="numpy")
NEAREST, LINEAR, CUBIC = 0, 1, 2
ZEROS, BORDER, REFLECTION = 0, 1, 2
CUBIC_A = -0.75


@njit(**_JIT)
def _strides(shape):
    """C-order strides (in elements) of an int64 shape vector."""
    st = np.ones(shape.shape[0], np.int64)
    for d in range(shape.shape[0] - 2, -1, -1):
        st[d] = st[d + 1] * shape[d + 1]
    return st


# --------------------------------------------------------------------------- GridSample


@njit(**_JIT)
def _reflect(x, lo, hi):
    """Fold x into [lo, hi] by reflecting at the borders."""
    rng = hi - lo
    if rng <= 0.0:
        return lo
    if x < lo:
        dx = lo - x
        n = int(dx / rng)
        r = dx - n * rng
        return lo + r if n % 2 == 0 else hi - r
    if x > hi:
        dx = x - hi
        n = int(dx / rng)
        r = dx - n * rng
        return hi - r if n % 2 == 0 else lo + r
    return x


@njit(**_JIT)
def _pixel(i, n, padding, lo, hi):
    """The index read for tap i of a dim of size n, or -1 for a zero."""
    if padding == ZEROS:
        return i if 0 <= i < n else -1
    if padding == BORDER:
        return min(max(i, 0), n - 1)
    return min(max(int(_reflect(float(i), lo, hi)), 0), n - 1)


@njit(**_JIT)
def _cubic_coeffs(t, c):
    a = CUBIC_A
    x = abs(t)
    c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    c[1] = ((a + 2) * x - (a + 3)) * x * x + 1
    c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    c[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a


@njit(**_JIT)
def _grid_taps(v, n, mode, padding, align, idx, wt):
    """Taps (index or -1, weight) of normalised coordinate v along a dim of size n."""
    x = (v + 1.0) / 2.0 * (n - 1) if align else ((v + 1.0) * n - 1.0) / 2.0
    lo, hi = (0.0, n - 1.0) if align else (-0.5, n - 0.5)
    if mode == NEAREST:
        x = np.rint(x)
    if x < lo or x > hi:
        if padding == BORDER:
            x = min(max(x, 0.0), n - 1.0)
        elif padding == REFLECTION:
            x = _reflect(x, lo, hi)
    if mode == NEAREST:
        idx[0] = _pixel(int(x), n, padding, lo, hi)
        wt[0] = 1.0
        return
    x0 = int(math.floor(x))
    t = x - x0
    if mode == LINEAR:
        wt[0], wt[1] = 1.0 - t, t
    else:
        _cubic_coeffs(t, wt)
        x0 -= 1
    for k in range(2 if mode == LINEAR else 4):
        idx[k] = _pixel(x0 + k, n, padding, lo, hi)


@njit(**_JIT)
def grid_sample(x3, dims, grid3, out3, mode, padding, align):
    r = dims.shape[0]
    k = 1 if mode == NEAREST else 2 if mode == LINEAR else 4
    strides = _strides(dims)
    idx = np.empty((r, 4), np.int64)
    wt = np.zeros((r, 4), np.float64)
    ncomb = k ** r
    flat = np.empty(ncomb, np.int64)
    wflat = np.empty(ncomb, np.float64)
    for n in range(out3.shape[0]):
        for p in range(out3.shape[2]):
            for d in range(r):
                _grid_taps(np.float64(grid3[n, p, r - 1 - d]), dims[d], mode, padding, align, idx[d], wt[d])
            m = 0
            for q in range(ncomb):     # every combination of one tap per dim
                f, w, rest = 0, 1.0, q
                for d in range(r - 1, -1, -1):
                    t = rest % k
                    rest //= k
                    if idx[d, t] < 0:
                        w = 0.0
                    f += idx[d, t] * strides[d]
                    w *= wt[d, t]
                if w != 0.0:
                    flat[m] = f
                    wflat[m] = w
                    m += 1
            for c in range(out3.shape[1]):
                s = 0.0
                for j in range(m):
                    s += wflat[j] * x3[n, c, flat[j]]
                out3[n, c, p] = s


# --------------------------------------------------------------------------- AffineGrid


@njit(**_JIT)
def affine_grid(theta3, dims, out3, align):
    r = dims.shape[0]
    base = np.empty(r + 1, np.float64)
    base[r] = 1.0
    for n in range(out3.shape[0]):
        for p in range(out3.shape[1]):
            rest = p
            for d in range(r - 1, -1, -1):     # base[0] is x: the last dim
                i, s = rest % dims[d], dims[d]
                rest //= s
                if align:
                    base[r - 1 - d] = -1.0 + 2.0 * i / (s - 1) if s > 1 else -1.0
                else:
                    base[r - 1 - d] = -1.0 + (2.0 * i + 1.0) / s
            for j in range(r):
                acc = 0.0
                for q in range(r + 1):
                    acc += theta3[n, j, q] * base[q]
                out3[n, p, j] = acc


# --------------------------------------------------------------------------- Col2Im


@njit(**_JIT)
def col2im(x4, img, block, ncol, strides, pads, dil, out3):
    r = img.shape[0]
    ist = _strides(img)
    nk, nl = x4.shape[2], x4.shape[3]
    target = np.empty((nk, nl), np.int64)      # image position of (block offset, column), or -1
    for kk in range(nk):
        for ll in range(nl):
            f, ka, la = 0, kk, ll
            for d in range(r - 1, -1, -1):
                i = (la % ncol[d]) * strides[d] - pads[d] + (ka % block[d]) * dil[d]
                ka //= block[d]
                la //= ncol[d]
                if f >= 0 and 0 <= i < img[d]:
                    f += i * ist[d]
                else:
                    f = -1
            target[kk, ll] = f
    out3[...] = 0
    for n in range(x4.shape[0]):
        for c in range(x4.shape[1]):
            for kk in range(nk):
                for ll in range(nl):
                    t = target[kk, ll]
                    if t >= 0:
                        out3[n, c, t] += x4[n, c, kk, ll]


# --------------------------------------------------------------------------- DeformConv


@njit(**_JIT)
def _bilinear_zeros(img, y, x):
    """img sampled at (y, x), zero outside."""
    h, w = img.shape
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    ty, tx = y - y0, x - x0
    s = 0.0
    for a in range(2):
        yy = y0 + a
        if 0 <= yy < h:
            wy = ty if a else 1.0 - ty
            for b in range(2):
                xx = x0 + b
                if 0 <= xx < w:
                    s += wy * (tx if b else 1.0 - tx) * img[yy, xx]
    return s


@njit(**_JIT)
def deform_conv(x, w, offset, mask, bias, out, strides, pads, dil, group, offset_group):
    c_in, kh, kw = x.shape[1], w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    icg, ocg = c_in // group, out.shape[1] // group
    per_og = c_in // offset_group
    col = np.empty((c_in, kh * kw, oh * ow), x.dtype)     # the sampled, masked input columns
    for n in range(x.shape[0]):
        for c in range(c_in):
            g = c // per_og
            for i in range(kh):
                for j in range(kw):
                    for p in range(oh):
                        for q in range(ow):
                            y = p * strides[0] - pads[0] + i * dil[0] + offset[n, g, i, j, 0, p, q]
                            xx = q * strides[1] - pads[1] + j * dil[1] + offset[n, g, i, j, 1, p, q]
                            col[c, i * kw + j, p * ow + q] = mask[n, g, i, j, p, q] * _bilinear_zeros(x[n, c], y, xx)
        for gi in range(group):
            wg = w[gi * ocg:(gi + 1) * ocg].reshape(ocg, icg * kh * kw)
            cg = col[gi * icg:(gi + 1) * icg].reshape(icg * kh * kw, oh * ow)
            og = out[n, gi * ocg:(gi + 1) * ocg].reshape(ocg, oh * ow)
            gemm(wg, cg, og)
            for o in range(ocg):
                og[o] += bias[gi * ocg + o]


# --------------------------------------------------------------------------- RoiAlign


@njit(**_JIT)
def roi_align(x, rois, batch, out, scale, sampling_ratio, half_pixel, is_max):
    height, width = x.shape[2], x.shape[3]
    ph_n, pw_n = out.shape[2], out.shape[3]
    shift = 0.5 if half_pixel else 0.0
    for r in range(rois.shape[0]):
        x1, y1 = rois[r, 0] * scale - shift, rois[r, 1] * scale - shift
        x2, y2 = rois[r, 2] * scale - shift, rois[r, 3] * scale - shift
        rw, rh = x2 - x1, y2 - y1
        if not half_pixel:            # malformed ROIs count as 1x1
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph_n, rw / pw_n
        gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(rh / ph_n))
        gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(rw / pw_n))
        count = max(gh * gw, 1)
        pos = np.zeros((ph_n, pw_n, max(gh * gw, 0), 4), np.int64)
        wts = np.zeros((ph_n, pw_n, max(gh * gw, 0), 4), np.float64)
        for ph in range(ph_n):
            for pw in range(pw_n):
                for iy in range(gh):
                    y = y1 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = x1 + pw * bw + (ix + 0.5) * bw / gw
                        s = iy * gw + ix
                        if y < -1.0 or y > height or xx < -1.0 or xx > width:
                            continue     # outside the map: weights stay 0
                        yc, xc = max(y, 0.0), max(xx, 0.0)
                        ylo, xlo = int(yc), int(xc)
                        if ylo >= height - 1:
                            ylo = yhi = height - 1
                            yc = float(ylo)
                        else:
                            yhi = ylo + 1
                        if xlo >= width - 1:
                            xlo = xhi = width - 1
                            xc = float(xlo)
                        else:
                            xhi = xlo + 1
                        ly, lx = yc - ylo, xc - xlo
                        hy, hx = 1.0 - ly, 1.0 - lx
                        pos[ph, pw, s, 0], wts[ph, pw, s, 0] = ylo * width + xlo, hy * hx
                        pos[ph, pw, s, 1], wts[ph, pw, s, 1] = ylo * width + xhi, hy * lx
                        pos[ph, pw, s, 2], wts[ph, pw, s, 2] = yhi * width + xlo, ly * hx
                        pos[ph, pw, s, 3], wts[ph, pw, s, 3] = yhi * width + xhi, ly * lx
        b = batch[r]
        if b < 0 or b >= x.shape[0]:
            raise IndexError("RoiAlign: batch index out of range")
        for c in range(x.shape[1]):
            img = x[b, c].reshape(height * width)
            for ph in range(ph_n):
                for pw in range(pw_n):
                    acc = 0.0
                    for s in range(gh * gw):
                        if is_max:     # onnx.reference: the max of the four weighted corners
                            v = wts[ph, pw, s, 0] * img[pos[ph, pw, s, 0]]
                            for k in range(1, 4):
                                v = max(v, wts[ph, pw, s, k] * img[pos[ph, pw, s, k]])
                            acc = v if s == 0 else max(acc, v)
                        else:
                            for k in range(4):
                                acc += wts[ph, pw, s, k] * img[pos[ph, pw, s, k]]
                    out[r, c, ph, pw] = acc if is_max else acc / count


# --------------------------------------------------------------------------- MaxUnpool


@njit(**_JIT)
def max_unpool(x, idx, full, oshape, out):
    out[:] = 0
    ost = _strides(oshape)
    total = 1
    for d in range(full.shape[0]):
        total *= full[d]
    for i in range(x.shape[0]):
        j = idx[i]
        if j < 0 or j >= total:
            raise IndexError("MaxUnpool: index out of range")
        f = 0
        for d in range(full.shape[0] - 1, -1, -1):
            c = j % full[d]
            j //= full[d]
            f = f + c * ost[d] if f >= 0 and c < oshape[d] else -1
        if f >= 0:
            out[f] = x[i]
