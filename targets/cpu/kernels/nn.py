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
* GEMMs go through ``blas.gemm`` (MKL or scipy's OpenBLAS) in the array dtype; reductions
  (pool sums, norms) are done in float64 and stored in the array dtype.
* Hot inner loops index 1-D slice views with a ``range(n)`` counter starting at 0:
  Numba then knows the index is non-negative, skips the negative-index wraparound
  and LLVM vectorizes (indexing ``a[base + i]`` instead is ~5x slower).
"""

import numpy as np
from numba import carray, prange, types
from numba.extending import overload

from .blas import OWN_MIN_M, gemm, gemm_epilogue, gemm_implicit
from .fastmath import logistic_rows32, sum64
from .jit import njit
from .linalg import gemv_t
from .sgemm import NR, clamp, voidptr
from .vecir import EPI_CLAMP, EPI_HARDSWISH, EPI_NONE, EPI_SILU

__all__ = [
    "conv",
    "conv_fused",
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


@njit(cache=True, error_model="numpy")
def _window_ranges(n_out, stride, pad, kernel, dilation, size):
    """Per output position o: start = o*stride - pad and the tap range [lo, hi) that lands in [0, size).

    Tabulated once per call so the hot loops do no integer division.
    """
    start = np.empty(n_out, dtype=np.int64)
    lo = np.empty(n_out, dtype=np.int64)
    hi = np.empty(n_out, dtype=np.int64)
    for o in range(n_out):
        s0 = o * stride - pad
        start[o] = s0
        lo[o], hi[o] = _valid_range(kernel, dilation, s0, size)
    return start, lo, hi


# ----------------------------------------------------------------------------- Conv


@njit(cache=True, error_model="numpy")
def _unfold(x, n, c0, cg, kernel, strides, pads_begin, dilations, out_sp, oh0, oh1, col):
    """Copy the in-bounds taps of x[n, c0:c0+cg] for output rows oh0 .. oh1 into
    col[(c,kd,kh,kw), (od, oh - oh0, ow)].

    Padding taps are not written: col is zero-filled once by the caller, and the
    set of padding taps is the same for every image and group (and band of rows).
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
                    n_w = w_hi - w_lo
                    for od in range(d_lo, d_hi):
                        xd = xc[od * sd + offd]
                        for oh in range(max(h_lo, oh0), min(h_hi, oh1)):
                            src = xd[oh * sh + offh]
                            base = (od * (oh1 - oh0) + oh - oh0) * OW + w_lo
                            d_seg = dst[base:base + n_w]
                            i0 = w_lo * sw + offw
                            if sw == 1:
                                s_seg = src[i0:i0 + n_w]
                                for j in range(n_w):
                                    d_seg[j] = s_seg[j]
                            elif sw == 2:   # a constant step vectorises (shuffles); the view's step did not
                                s_seg = src[i0:i0 + 2 * n_w - 1]
                                for j in range(n_w):
                                    d_seg[j] = s_seg[2 * j]
                            else:
                                s_str = src[i0:i0 + (n_w - 1) * sw + 1:sw]
                                for j in range(n_w):
                                    d_seg[j] = s_str[j]
                    row += 1


@njit(cache=True, error_model="numpy")
def _pad_image(x, n, c0, cg, pads_begin, xp):
    """Copy x[n, c0:c0+cg] into the interior of the zero-bordered flat buffer xp (cg, Dp, Hp, Wp)."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    pd, ph, pw = pads_begin
    Dp, Hp, Wp = xp.shape[1], xp.shape[2], xp.shape[3]
    w_lo = max(0, -pw)
    n_w = min(W, Wp - pw) - w_lo
    for c in range(cg):
        xc = x[n, c0 + c]
        for i_d in range(max(0, -pd), min(D, Dp - pd)):
            for i_h in range(max(0, -ph), min(H, Hp - ph)):
                src = xc[i_d, i_h, w_lo:w_lo + n_w]
                dst = xp[c, i_d + pd, i_h + ph, w_lo + pw:w_lo + pw + n_w]
                for j in range(n_w):
                    dst[j] = src[j]


# im2col of small 2-D outputs (UNFOLD_GATHER_MAX positions or fewer): the general unfold's row
# by row copies of 7 elements cost more in loop and slice overhead than in data (256 channels of
# 7x7, 3x3 taps: 99 us); here the planes are zero-padded once and each tap's row is one loop
# over the output positions through a precomputed index (33 us). From 28x28 on the row copies win.
UNFOLD_GATHER_MAX = 256


@njit(cache=True, error_model="numpy")
def _unfold_gather(x, n, c0, cg, kH, kW, strides, dilations, OH, OW, pads_begin, xp, idx, col):
    """col[(c, kh, kw), oh*OW + ow] = padded x[n, c0 + c] at (oh*sh + kh*dh, ow*sw + kw*dw);
    xp (cg, 1, Hp, Wp) is the zero-bordered copy (zeroed by the caller), idx (OH*OW) scratch."""
    sh, sw = strides[1], strides[2]
    dh, dw = dilations[1], dilations[2]
    Hp, Wp = xp.shape[2], xp.shape[3]
    _pad_image(x, n, c0, cg, pads_begin, xp)
    for oh in range(OH):
        for ow in range(OW):    # unsigned: no negative-index wraparound in the loop below
            idx[oh * OW + ow] = np.uint32(oh * sh * Wp + ow * sw)
    xf = xp.reshape(-1)
    row = 0
    for c in range(cg):
        for kh in range(kH):
            for kw in range(kW):
                src = xf[(c * Hp + kh * dh) * Wp + kw * dw:]
                dst = col[row]
                for q in range(OH * OW):
                    dst[q] = src[idx[q]]
                row += 1


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
                    for od in range(OD):
                        src0 = cbase + ((od * sd + kd * dd) * Hp + kh * dh) * Wp + kw * dw
                        dst = col[row, od * run:(od + 1) * run]
                        src = xp_flat[src0:src0 + run]
                        for j in range(run):
                            dst[j] = src[j]
                    row += 1


# ------------------------------------------------------------ implicit GEMM (float32 2-D)
# A float32 2-D conv as a GEMM whose B is never built: the micro-kernel reads each tap's row of
# NR output positions straight from a zero-bordered copy of the image (sgemm's indirect B,
# through a table of tap offsets). Stride s becomes s*s phase images (rows and columns split by
# their index mod s), in which every tap is again a contiguous row; output rows are laid Wq
# apart there, and the Wq - OW columns past each row are computed and dropped. The im2col it
# replaces wrote K x P floats per image and read them again (32 channels of 56x56, 3x3: 3.7 MB,
# out of L2), and gathered element by element for outputs narrower than NR.
# Taken unless those dropped columns would cost more than half as many panels again.
IMPLICIT_MAX_WASTE = 1.5


@njit(cache=True, error_model="numpy")
def implicit_plan(cg, kH, kW, strides, dilations, OH, OW):
    """(Hq, Wq, slot of each phase (-1: unused), offs, floats of the image buffer):
    phase (a, b) holds padded rows a, a + sh, ... and columns b, b + sw, ...; offs[r] is
    im2col row r = (c, kh, kw)'s first tap in the buffer of slots x cg x Hq x Wq."""
    sh, sw = strides[1], strides[2]
    dh, dw = dilations[1], dilations[2]
    Hq = OH + (kH - 1) * dh // sh
    Wq = OW + (kW - 1) * dw // sw
    slot = np.full(sh * sw, -1, np.int64)
    slots = 0
    for kh in range(kH):
        for kw in range(kW):
            ph = (kh * dh % sh) * sw + kw * dw % sw
            if slot[ph] < 0:
                slot[ph] = slots
                slots += 1
    plane = Hq * Wq
    offs = np.empty(cg * kH * kW, np.int64)
    r = 0
    for c in range(cg):
        for kh in range(kH):
            for kw in range(kW):
                ph = (kh * dh % sh) * sw + kw * dw % sw
                offs[r] = (slot[ph] * cg + c) * plane + (kh * dh // sh) * Wq + kw * dw // sw
                r += 1
    size = max(slots * cg * plane, offs.max() + (OH - 1) * Wq + OW)
    return Hq, Wq, slot, offs, size


@njit(cache=True, error_model="numpy")
def implicit_pays(cg, kH, kW, strides, dilations, OH, OW):
    """Whether the implicit GEMM's dropped columns leave it within IMPLICIT_MAX_WASTE of the
    panels an exact im2col would take."""
    Wq = OW + (kW - 1) * dilations[2] // strides[2]
    return (OH - 1) * Wq + OW + NR - 1 <= IMPLICIT_MAX_WASTE * (OH * OW + NR - 1)


@njit(cache=True, error_model="numpy", inline="always")
def split_columns(src, even, odd):
    """even[t] = src[2t], odd[t] = src[2t + 1] (a stride-2 row's two column phases) in one
    loop where both exist: LLVM loads the pairs and shuffles them."""
    nb = min(even.shape[0], odd.shape[0])
    for t in range(nb):
        even[t] = src[2 * t]
        odd[t] = src[2 * t + 1]
    for t in range(nb, even.shape[0]):
        even[t] = src[2 * t]
    for t in range(nb, odd.shape[0]):
        odd[t] = src[2 * t + 1]


@njit(cache=True, error_model="numpy")
def _fill_pair(x, n, c0, cg, a, sh, ph, pw, Hq, Wq, s0, s1, xq):
    """fill_phases' two column phases (slots s0, s1) of row phase a at stride 2, both at once
    (split_columns; one phase at a time, element by element, cost the ResNet stem's 7x7
    stride-2 conv a tenth of its time). Even input columns 2t land in the phase of pw's parity
    at t + pw // 2, odd ones in the other at t + (pw + 1) // 2."""
    H, W = x.shape[3], x.shape[4]
    plane = Hq * Wq
    se, so = (s0, s1) if pw % 2 == 0 else (s1, s0)
    ce, co = pw // 2, (pw + 1) // 2
    ne, no = max(0, min((W + 1) // 2, Wq - ce)), max(0, min(W // 2, Wq - co))
    for c in range(cg):
        xc = x[n, c0 + c, 0]
        for i in range(Hq):
            ih = i * sh + a - ph
            if ih < 0 or ih >= H:
                continue
            src = xc[ih]
            de = (se * cg + c) * plane + i * Wq + ce
            do = (so * cg + c) * plane + i * Wq + co
            split_columns(src, xq[de:de + ne], xq[do:do + no])


@njit(cache=True, error_model="numpy")
def fill_phases(x, n, c0, cg, strides, pads_begin, Hq, Wq, slot, xq):
    """The phase images of x[n, c0:c0+cg] (see implicit_plan) into xq; only the inside is
    written, so the zeros of its border stay from the buffer's first fill."""
    H, W = x.shape[3], x.shape[4]
    sh, sw = strides[1], strides[2]
    ph, pw = pads_begin[1], pads_begin[2]
    plane = Hq * Wq
    for a in range(sh):
        if sw == 2 and slot[2 * a] >= 0 and slot[2 * a + 1] >= 0:
            _fill_pair(x, n, c0, cg, a, sh, ph, pw, Hq, Wq, slot[2 * a], slot[2 * a + 1], xq)
            continue
        for b_ in range(sw):
            s_ = slot[a * sw + b_]
            if s_ < 0:
                continue
            j_lo = max(0, (pw - b_ + sw - 1) // sw)
            j_hi = min(Wq, (W - 1 + pw - b_) // sw + 1)
            for c in range(cg):
                xc = x[n, c0 + c, 0]
                base = (s_ * cg + c) * plane
                for i in range(Hq):
                    ih = i * sh + a - ph
                    if ih < 0 or ih >= H:
                        continue
                    src = xc[ih]
                    d = base + i * Wq
                    if sw == 1:
                        seg = src[j_lo + b_ - pw:j_hi + b_ - pw]
                        dst = xq[d + j_lo:d + j_hi]
                        for j in range(j_hi - j_lo):
                            dst[j] = seg[j]
                    else:
                        for j in range(j_lo, j_hi):
                            xq[d + j] = src[j * sw + b_ - pw]


@njit(cache=True, error_model="numpy")
def implicit_rows(wg, xq, offs, Wq, OW, oh0, oh1, tmp, o2, b, m0, r2, act, alpha, beta):
    """Output rows oh0 .. oh1 (o2, r2: their (mg, (oh1 - oh0) * OW) block of out and of the
    residual) = act(wg @ B + b [+ r2]), B the implicit GEMM's over the phase images xq. Where
    no column is dropped (Wq == OW) and the activation is a clamp, the epilogue runs in the
    micro-kernel's registers; else the GEMM fills tmp ((mg, (oh1 - oh0 - 1) * Wq + OW)) and
    the crop applies it."""
    q0 = oh0 * Wq
    rows = o2.shape[0]
    clamped, lo, hi = _clamp_bounds(act, alpha, beta, o2)
    if Wq == OW:
        if clamped:
            gemm_implicit(wg, xq[q0:], offs, o2, b[m0:m0 + rows], r2, lo, hi)
            return
        gemm_implicit(wg, xq[q0:], offs, o2, b[:0], r2[:0], lo, hi)
        _crop_epi(o2, o2, OW, OW, b, m0, r2, act, alpha, beta)
        return
    gemm_implicit(wg, xq[q0:], offs, tmp, b[:0], r2[:0], lo, hi)
    _crop_epi(tmp, o2, Wq, OW, b, m0, r2, act, alpha, beta)


# Epilogue codes (the lowering passes them as ints): out = act(conv + bias [+ residual]).
ACT_NONE, ACT_RELU, ACT_CLIP, ACT_SIGMOID, ACT_HARDSIGMOID, ACT_HARDSWISH, ACT_SILU, ACT_LEAKY = range(8)
# Below this a direct conv runs on one thread. A fork costs ~1.5 us on an idle machine (an empty
# prange over 2 threads, OpenMP) but 5-20 ms when other processes spin on the cores (bench, before
# its pause between engines: mobilenetv2_half's 17 depthwise convs took 32 ms serial, 116 ms forked
# at 2 threads). 128K FLOP is ~5 us of work: the stride-2 depthwise convs to 7x7 (288 channels
# from 14x14: 254K FLOP) took 25.5 us serial, 15.0 on window3x3.conv_par at 2 threads.
PAR_MIN_FLOPS = 1 << 17
# Winograd (conv_winograd) where it pays, measured at 1 thread against the im2col GEMM. Per image
# and block of tile rows, V and M (16 x (C + M) x tiles) take at most WINO_BLOCK elements (a whole
# 56x56 image with 32 channels in and out). The transformed filters U are 16/9 the filters' size
# and come from memory once per call, so too few 2x2 output tiles cannot pay for them:
# resnet18_half's 256-channel 7x7 convs (16 tiles) ran 1.3x slower in the model, its 14x14 ones
# (49 tiles) 0.8x. Filters transformed on each call (not constants) cost about a 64-tile conv's
# saving. Below 8 channels the transforms outweigh the GEMM.
WINO_BLOCK = 1 << 20
WINO_MIN_CHANNELS, WINO_MIN_TILES, WINO_MIN_TILES_PER_CALL = 8, 32, 64


@njit(cache=True, error_model="numpy")
def _clamp(row, bias, relu, lo, hi):
    """row = Relu(row + bias) (relu true) or Clip(row + bias, lo, hi) in place, through a small
    buffer: written in place the select loop stayed scalar (0.46 ns per element); into another
    array it vectorises (0.13)."""
    n = row.shape[0]
    buf = np.empty(min(n, 256), dtype=row.dtype)
    for s in range(0, n, 256):
        seg = row[s:min(n, s + 256)]
        k = seg.shape[0]
        t = buf[:k]
        if relu:
            for j in range(k):
                v = seg[j] + bias
                t[j] = 0 if v < 0 else v
        else:
            for j in range(k):
                v = seg[j] + bias
                v = lo if v < lo else v
                t[j] = hi if v > hi else v
        for j in range(k):
            seg[j] = t[j]


@njit(cache=True, error_model="numpy", inline="always")
def _add_bias(row, bias, res):
    """row = row + bias [+ res] in place (res a same-length segment or size 0), the adds in the
    unfused graph's order (Add after the bias). Inlined: a call per short row (7x7 images) cost more
    than its adds."""
    n = row.shape[0]
    if res.shape[0] > 0:
        for j in range(n):
            row[j] = (row[j] + bias) + res[j]
    elif bias != 0:
        for j in range(n):
            row[j] += bias


@njit(cache=True, error_model="numpy")
def _activate(row, bias, act, alpha, beta):
    """row = act(row + bias) in place, in one pass; one loop per activation, so each vectorises,
    with the formulas of scalar.py's renderings. Short rows are better passed as one block (bias
    0, added before): the call and the clamp's buffer cost about 70 ns, more than a 49-element
    row's work."""
    n = row.shape[0]
    if act == ACT_RELU or act == ACT_CLIP:
        _clamp(row, bias, act == ACT_RELU, alpha, beta)
    elif act == ACT_SIGMOID:
        if row.itemsize == 4:
            logistic_rows32(row, bias, False)
        else:
            for j in range(n):
                row[j] = 1.0 / (1.0 + np.exp(-np.float64(row[j] + bias)))
    elif act == ACT_HARDSIGMOID:
        for j in range(n):
            row[j] = max(0.0, min(1.0, alpha * (row[j] + bias) + beta))
    elif act == ACT_HARDSWISH:
        # In the row's dtype (float64 constants made the loop convert: 0.58 ns an element against
        # 0.2); for float32 the gate may differ from scalar.py's float64 rendering by an ulp.
        z, one, six, half = row.dtype.type(0), row.dtype.type(1), row.dtype.type(6), row.dtype.type(0.5)
        for j in range(n):
            v = row[j] + bias
            row[j] = v * max(z, min(one, v / six + half))
    elif act == ACT_SILU:
        if row.itemsize == 4:
            logistic_rows32(row, bias, True)
        else:
            for j in range(n):
                v = row[j] + bias
                row[j] = v * (1.0 / (1.0 + np.exp(-np.float64(v))))
    elif act == ACT_LEAKY:
        for j in range(n):
            v = row[j] + bias
            row[j] = v if v >= 0 else v * alpha
    elif bias != 0:
        for j in range(n):
            row[j] += bias


@njit(cache=True, error_model="numpy")
def _epilogue(row, bias, res, act, alpha, beta):
    """row = act(row + bias [+ res]) in place; res is a same-length segment or size 0."""
    if res.shape[0] > 0:
        _add_bias(row, bias, res)
        _activate(row, row.dtype.type(0), act, alpha, beta)
    else:
        _activate(row, bias, act, alpha, beta)


# Rows at least this long take their epilogue (_epilogue) one row at a time, bias and activation
# in one pass when there is no residual; shorter ones add the bias row by row and activate the
# whole block in one call.
EPI_ROW_MIN = 1024


@njit(cache=True, error_model="numpy")
def _gemm_epi(a, col, tmp, out2, Wp, OW, b, m0, res2, act, alpha, beta):
    """tmp = a @ col (BLAS), then rows of out2 = act(tmp (cropped to OW of every Wp) + b [+ res2]).

    tmp may be out2 itself when Wp == OW (no cropping). The bias with Relu, Clip or no
    activation (and a residual) run in the GEMM's own epilogue without cropping
    (blas.gemm_epilogue: on sgemm.py's kernel, in registers as each tile is stored), and in the
    crop's copy with it: no second pass over out2 either way."""
    rows = out2.shape[0]
    clamped, lo, hi = _clamp_bounds(act, alpha, beta, out2)
    if Wp == OW and clamped:
        gemm_epilogue(a, col, out2, b[m0:m0 + rows], res2, lo, hi)
        return
    gemm(a, col, tmp)
    _crop_epi(tmp, out2, Wp, OW, b, m0, res2, act, alpha, beta)


@njit(cache=True, error_model="numpy", inline="always")
def _clamp_bounds(act, alpha, beta, out2):
    """(whether act is a clamp, its lo, hi in out2's dtype): Relu is (0, inf), none (-inf, inf)."""
    clamped = act == ACT_NONE or act == ACT_RELU or act == ACT_CLIP
    lo, hi = (alpha, beta) if act == ACT_CLIP else (0.0 if act == ACT_RELU else -np.inf, np.inf)
    return clamped, out2.dtype.type(lo), out2.dtype.type(hi)


@njit(cache=True, error_model="numpy")
def _crop_row(src, dst, Wp, OW, bias, res, clamped, lo, hi):
    """dst (rows of OW) = src (rows of Wp) without the Wp - OW junk columns past each row,
    with the epilogue clamp(v + bias [+ res], lo, hi) where clamped (res: like dst, or size 0)."""
    has_res = res.shape[0] > 0
    for r in range(dst.shape[0] // OW):
        s_ = src[r * Wp:r * Wp + OW]
        d = dst[r * OW:(r + 1) * OW]
        if not clamped:
            for j in range(OW):
                d[j] = s_[j]
        elif has_res:
            rr = res[r * OW:(r + 1) * OW]
            for j in range(OW):
                d[j] = clamp((s_[j] + bias) + rr[j], lo, hi)
        else:
            for j in range(OW):
                d[j] = clamp(s_[j] + bias, lo, hi)


@njit(cache=True, error_model="numpy")
def _crop_epi(tmp, out2, Wp, OW, b, m0, res2, act, alpha, beta):
    """_gemm_epi after its GEMM into tmp (out2 itself where Wp == OW)."""
    rows = out2.shape[0]
    clamped, lo, hi = _clamp_bounds(act, alpha, beta, out2)
    if Wp != OW:
        for m in range(rows):
            _crop_row(tmp[m], out2[m], Wp, OW, b[m0 + m], res2[m] if res2.shape[0] > 0 else out2[m, :0], clamped, lo, hi)
        if clamped:
            return
    if out2.shape[1] >= EPI_ROW_MIN:
        for m in range(rows):
            if res2.shape[0] > 0:
                _epilogue(out2[m], b[m0 + m], res2[m], act, alpha, beta)
            else:
                _epilogue(out2[m], b[m0 + m], out2[m, :0], act, alpha, beta)
        return
    for m in range(rows):
        if res2.shape[0] > 0:
            _add_bias(out2[m], b[m0 + m], res2[m])
        else:
            _add_bias(out2[m], b[m0 + m], out2[m, :0])
    if act != ACT_NONE:
        _activate(out2.reshape(-1), out2.dtype.type(0), act, alpha, beta)


@njit(cache=True, error_model="numpy")
def _plane_epilogue(out, n, m, b, res, act, alpha, beta):
    """The epilogue over the whole plane out[n, m] at once (one call, not one per row)."""
    o = out[n, m].reshape(-1)
    if res.shape[0] > 0:
        _epilogue(o, b[m], res[n, m].reshape(-1), act, alpha, beta)
    else:
        _epilogue(o, b[m], o[:0], act, alpha, beta)


@njit(cache=True, error_model="numpy")
def _direct_plane(x, w, out, n, m, c0, cg, strides, pads_begin, dilations, w_lo, w_hi, b, res, act, alpha, beta):
    """out[n, m] = act(sum over cg input channels and taps of w * x + b[m] [+ res[n, m]]), computed
    directly, one output row at a time (depthwise and small-group convolutions: no im2col, no GEMM)."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    kD, kH, kW = w.shape[2], w.shape[3], w.shape[4]
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    o = out[n, m]
    for od in range(OD):
        for oh in range(OH):
            orow = o[od, oh]
            for j in range(OW):
                orow[j] = 0
            for c in range(cg):
                xc = x[n, c0 + c]
                wc = w[m, c]
                for kd in range(kD):
                    i_d = od * sd + kd * dd - pd
                    if i_d < 0 or i_d >= D:
                        continue
                    for kh in range(kH):
                        i_h = oh * sh + kh * dh - ph
                        if i_h < 0 or i_h >= H:
                            continue
                        xr = xc[i_d, i_h]
                        for kw in range(kW):
                            lo = w_lo[kw]
                            nn = w_hi[kw] - lo
                            if nn <= 0:
                                continue
                            wv = wc[kd, kh, kw]
                            i0 = lo * sw + kw * dw - pw
                            dst = orow[lo:lo + nn]
                            if sw == 1:
                                src = xr[i0:i0 + nn]
                                for j in range(nn):
                                    dst[j] += wv * src[j]
                            else:
                                s_str = xr[i0:i0 + (nn - 1) * sw + 1:sw]
                                for j in range(nn):
                                    dst[j] += wv * s_str[j]
    _plane_epilogue(out, n, m, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", inline="always")
def _row3x3(o, r0, r1, r2, wc, first):
    """o (+)= one stride-1 output row of a 3x3 window over the padded input rows r0, r1, r2.

    Three arrays, not nine shifted views: LLVM vectorises only while the runtime
    alias checks between the arrays stay few."""
    w0, w1, w2 = wc[0, 0], wc[0, 1], wc[0, 2]
    w3, w4, w5 = wc[1, 0], wc[1, 1], wc[1, 2]
    w6, w7, w8 = wc[2, 0], wc[2, 1], wc[2, 2]
    n = o.shape[0]
    for j in range(n):
        v = (w0 * r0[j] + w1 * r0[j + 1] + w2 * r0[j + 2] + w3 * r1[j] + w4 * r1[j + 1] + w5 * r1[j + 2]
             + w6 * r2[j] + w7 * r2[j + 1] + w8 * r2[j + 2])
        o[j] = v if first else o[j] + v


@njit(cache=True, error_model="numpy")
def _plane_buffers(x, out, strides):
    """The zero-bordered padded plane (Hp, Wp) and a stride-1 row (Wp - 2) that _plane3x3 works in.

    Allocated once per call and shared by every plane: the interior each plane writes is the
    same, so the border stays zero."""
    sh, sw = strides[1], strides[2]
    Hp, Wp = (out.shape[3] - 1) * sh + 3, (out.shape[4] - 1) * sw + 3
    return np.zeros((Hp, Wp), dtype=x.dtype), np.empty(Wp - 2, dtype=x.dtype)


@njit(cache=True, error_model="numpy", inline="always")
def _take_every(o, row, step, first):
    """o (+)= row[::step]; step 2 spelt as a constant, which vectorises (a run-time step cost
    ~1 us per 28x28 plane)."""
    if step == 2:
        for j in range(o.shape[0]):
            v = row[2 * j]
            o[j] = v if first else o[j] + v
    else:
        for j in range(o.shape[0]):
            v = row[step * j]
            o[j] = v if first else o[j] + v


@njit(cache=True, error_model="numpy")
def _plane3x3(x, w, out, n, m, c0, cg, strides, pads_begin, b, res, act, alpha, beta, xp, tmp):
    """_direct_plane for 2-D 3x3 kernels, dilation 1: the input plane is copied into the
    zero-bordered buffer xp, then each output row is one vectorised loop over its 9 taps.
    A W stride > 1 computes the stride-1 row into tmp (contiguous loads vectorise; strided
    ones did not: 5 GFLOP/s) and keeps every sw-th value."""
    H, W = x.shape[3], x.shape[4]
    OH, OW = out.shape[3], out.shape[4]
    sh, sw = strides[1], strides[2]
    ph, pw = pads_begin[1], pads_begin[2]
    Hp, Wp = xp.shape[0], xp.shape[1]
    o = out[n, m, 0]
    i_lo, i_hi = max(0, -ph), min(H, Hp - ph)
    j_lo, j_hi = max(0, -pw), min(W, Wp - pw)
    for c in range(cg):
        xc = x[n, c0 + c, 0]
        for i in range(i_lo, i_hi):
            src = xc[i, j_lo:j_hi]
            dst = xp[i + ph, j_lo + pw:j_hi + pw]
            for j in range(j_hi - j_lo):
                dst[j] = src[j]
        wc = w[m, c, 0]
        first = c == 0
        for oh in range(OH):
            r = oh * sh
            if sw == 1:
                _row3x3(o[oh], xp[r], xp[r + 1], xp[r + 2], wc, first)
            else:
                _row3x3(tmp, xp[r], xp[r + 1], xp[r + 2], wc, True)
                _take_every(o[oh], tmp, sw, first)
    _plane_epilogue(out, n, m, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy")
def _is3x3(x, w, dilations):
    return x.shape[2] == 1 and w.shape[2] == 1 and w.shape[3] == 3 and w.shape[4] == 3 and dilations[1] == 1 and dilations[2] == 1


# Wide 3x3 depthwise path. The zero-bordered input plane is split by stride phase
# (s = 1: the padded plane; s = 2: its four even/odd row/column sub-planes), each stored
# flat with Wq columns. Tap (kh, kw) of output q = oh*Wq + ow then reads phase plane
# (kh % s, kw % s) at q + (kh // s)*Wq + kw // s: one long contiguous loop per block of
# output rows instead of one short one per row (the 7x7 planes of mobilenetv2 ran at
# 1.7 GFLOP/s row by row). Columns ow >= OW are junk, dropped by the cropping epilogue.
DW_BLOCK = 2048   # output elements (wide) per block: the block's sums stay in L1
# The depthwise loops may fuse each tap's multiply and add (FMA; no other reordering): 96
# planes of 56x56 took 0.21 ms with a multiply and an add per tap, 0.175 fused (the AVX-512
# VM); the sums then round as the GEMM micro-kernel's do.
DW_MATH = {"contract"}


@njit(cache=True, error_model="numpy", callbacks=False)
def dw_wide(x_shape, w_shape, strides, dilations):
    """Whether a direct conv takes the wide 3x3 path (conv_dw_serial, conv_dw_par)."""
    return (x_shape[2] == 1 and w_shape[2] == 1 and w_shape[3] == 3 and w_shape[4] == 3 and dilations[1] == 1
            and dilations[2] == 1 and strides[1] == strides[2] and strides[1] <= 2)


@njit(cache=True, error_model="numpy", inline="always")
def _fill_phases(xc, xq, s, ph, pw, Hq, Wq):
    """Scatter the plane xc (H, W) into the phase planes xq (s*s, plane size): padded
    position (i + ph, j + pw) goes to phase ((i+ph) % s, (j+pw) % s) at ((i+ph)//s, (j+pw)//s).
    Positions no output reads are skipped; the border is never written, so it stays zero.
    The column split is worked out once per plane (a run-time division per row cost more
    than the copy on 7x7 planes)."""
    H, W = xc.shape
    if s == 1:
        n = min(W, Wq - pw)
        for i in range(min(H, Hq - ph)):
            dst = xq[0, (i + ph) * Wq + pw:(i + ph) * Wq + pw + n]
            src = xc[i]
            for t in range(n):
                dst[t] = src[t]
        return
    # Even input columns 2t land in phase column pw & 1 at t + pw // 2, odd ones in the other at t + (pw + 1) // 2.
    be, ce, co = pw & 1, pw >> 1, (pw + 1) >> 1
    ne, no = max(0, min((W + 1) >> 1, Wq - ce)), max(0, min(W >> 1, Wq - co))
    for i in range(min(H, 2 * Hq - ph)):
        q = ((i + ph) >> 1) * Wq
        k = 2 * ((i + ph) & 1)
        src = xc[i]
        split_columns(src, xq[k + be, q + ce:q + ce + ne], xq[k + 1 - be, q + co:q + co + no])


@njit(cache=True, error_model="numpy", inline="always")
def _wide3x3s2(o, p00, p00d, p01, p01d, p10, p11, wc, first):
    """o (+)= a stride-2 3x3 window in wide form over the phase planes (p00d, p01d: p00, p01 one row down)."""
    w0, w1, w2 = wc[0, 0], wc[0, 1], wc[0, 2]
    w3, w4, w5 = wc[1, 0], wc[1, 1], wc[1, 2]
    w6, w7, w8 = wc[2, 0], wc[2, 1], wc[2, 2]
    for j in range(o.shape[0]):
        v = (w0 * p00[j] + w1 * p01[j] + w2 * p00[j + 1] + w3 * p10[j] + w4 * p11[j] + w5 * p10[j + 1]
             + w6 * p00d[j] + w7 * p01d[j] + w8 * p00d[j + 1])
        o[j] = v if first else o[j] + v


@njit(cache=True, error_model="numpy", inline="always")
def _crop_epilogue(acc, Wq, nr, o, r0, bias, res, act, lohi, alpha, beta):
    """Output rows r0 .. r0 + nr of plane o (OH, OW) = act(acc's rows (cropped to OW of every Wq)
    + bias [+ res]). Clip and Relu (lohi: lo, hi, 0 in the array dtype) are applied in the
    same pass; the other activations run over the finished rows."""
    lo, hi = lohi[0], lohi[1]
    OW = o.shape[1]
    clamp = (act == ACT_RELU or act == ACT_CLIP) and res.shape[0] == 0
    for r in range(nr):
        src = acc[r * Wq:r * Wq + OW]
        dst = o[r0 + r]
        if clamp:
            for j in range(OW):
                v = src[j] + bias
                v = lo if v < lo else v
                dst[j] = hi if v > hi else v
        elif res.shape[0] > 0:
            rr = res[r0 + r]
            for j in range(OW):
                dst[j] = (src[j] + bias) + rr[j]
        else:
            for j in range(OW):
                dst[j] = src[j] + bias
    if not clamp and act != ACT_NONE:
        seg = o[r0:r0 + nr].reshape(-1)
        _epilogue(seg, lohi[2], seg[:0], act, alpha, beta)


# "Same" 3x3 depthwise (stride 1, pads 1, output as large as the input): the plane is copied
# in one run into a buffer with one zero row above and below, and output q = oh*W + ow reads
# the buffer at q + kh*W + kw: one loop over a block of output rows, written straight into
# out, no junk columns. Only the first and last column read across a row end (the other
# row's edge value instead of the zero pad); they are recomputed from their six real taps.


@njit(cache=True, error_model="numpy", inline="always")
def _same_rows(xb, wc, o, q0, W, bias, res, clamp, lo, hi):
    """o[j] = conv + bias [+ res[j]] (clamped to [lo, hi] when clamp) for outputs q0 .. q0 + len(o)."""
    n = o.shape[0]
    r0, r1, r2 = xb[q0:], xb[q0 + W:], xb[q0 + 2 * W:]
    w0, w1, w2 = wc[0, 0], wc[0, 1], wc[0, 2]
    w3, w4, w5 = wc[1, 0], wc[1, 1], wc[1, 2]
    w6, w7, w8 = wc[2, 0], wc[2, 1], wc[2, 2]
    if clamp:
        for j in range(n):
            v = (w0 * r0[j] + w1 * r0[j + 1] + w2 * r0[j + 2] + w3 * r1[j] + w4 * r1[j + 1] + w5 * r1[j + 2]
                 + w6 * r2[j] + w7 * r2[j + 1] + w8 * r2[j + 2]) + bias
            v = lo if v < lo else v
            o[j] = hi if v > hi else v
    elif res.shape[0] > 0:
        for j in range(n):
            o[j] = ((w0 * r0[j] + w1 * r0[j + 1] + w2 * r0[j + 2] + w3 * r1[j] + w4 * r1[j + 1] + w5 * r1[j + 2]
                     + w6 * r2[j] + w7 * r2[j + 1] + w8 * r2[j + 2]) + bias) + res[j]
    else:
        for j in range(n):
            o[j] = (w0 * r0[j] + w1 * r0[j + 1] + w2 * r0[j + 2] + w3 * r1[j] + w4 * r1[j + 1] + w5 * r1[j + 2]
                    + w6 * r2[j] + w7 * r2[j + 1] + w8 * r2[j + 2]) + bias
    # Edge columns: the same sum without the taps that crossed a row end (adding the zero
    # pad's products changes nothing but the sign of a zero).
    for j in range(0, n, W):
        e = j + W - 1
        v = (w1 * r0[j + 1] + w2 * r0[j + 2] + w4 * r1[j + 1] + w5 * r1[j + 2] + w7 * r2[j + 1] + w8 * r2[j + 2]) + bias
        u = (w0 * r0[e] + w1 * r0[e + 1] + w3 * r1[e] + w4 * r1[e + 1] + w6 * r2[e] + w7 * r2[e + 1]) + bias
        if clamp:
            v = lo if v < lo else v
            o[j] = hi if v > hi else v
            u = lo if u < lo else u
            o[e] = hi if u > hi else u
        elif res.shape[0] > 0:
            o[j] = v + res[j]
            o[e] = u + res[e]
        else:
            o[j] = v
            o[e] = u


@njit(cache=True, error_model="numpy", fastmath=DW_MATH)
def _same_planes(x, w, out, group, t0, t1, rows, b, res, act, lohi, alpha, beta, xb):
    """Planes t0 .. t1 (over N*M) of the same-size 3x3 depthwise conv (see above), in blocks of
    `rows` rows. One function with the row loops inlined: a call per plane, with its array
    arguments, cost more than a 7x7 plane's arithmetic (refcounting of every array passed)."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    M = out.shape[1]
    mg = M // group
    x2 = x.reshape(N * C, H * W)
    o2 = out.reshape(N * M, H * W)
    r2 = res.reshape(N * M, H * W) if res.size > 0 else o2[:0]
    w2 = w.reshape(M, 3, 3)
    has_res = res.size > 0
    clamp = (act == ACT_RELU or act == ACT_CLIP) and not has_res
    lo, hi = lohi[0], lohi[1]
    dst = xb[W + 1:W + 1 + H * W]
    n, m = t0 // M, t0 % M
    for t in range(t0, t1):
        if t == t0 or m % mg == 0:
            src = x2[n * C + m // mg]
            for i in range(H * W):
                dst[i] = src[i]
        o = o2[t]
        r = r2[t] if has_res else o[:0]
        for r0 in range(0, H, rows):
            q0, q1 = r0 * W, min(H, r0 + rows) * W
            seg = o[q0:q1]
            _same_rows(xb, w2[m], seg, q0, W, b[m], r[q0:q1] if has_res else r, clamp, lo, hi)
            if not clamp and act != ACT_NONE:
                _epilogue(seg, lohi[2], seg[:0], act, alpha, beta)
        m += 1
        if m == M:
            n, m = n + 1, 0


@njit(cache=True, error_model="numpy", fastmath=DW_MATH)
def _phase_planes(x, w, out, group, t0, t1, s, ph, pw, Hq, Wq, rows, b, res, act, lohi, alpha, beta, xq, acc):
    """Planes t0 .. t1 (over N*M) of the 3x3 conv in phase-plane wide form (see above), strides
    (s, s) with s 1 or 2, in blocks of `rows` output rows; one function, as _same_planes."""
    N, C = x.shape[0], x.shape[1]
    M, OH = out.shape[1], out.shape[3]
    mg, cg = M // group, x.shape[1] // group
    n, m = t0 // M, t0 % M
    for t in range(t0, t1):
        g = m // mg
        if t == t0 or m % mg == 0:
            for c in range(cg):
                _fill_phases(x[n, g * cg + c, 0], xq[c], s, ph, pw, Hq, Wq)
        o = out[n, m, 0]
        for r0 in range(0, OH, rows):
            nr = min(rows, OH - r0)
            a = acc[:nr * Wq]
            q0 = r0 * Wq
            for c in range(cg):
                wc = w[m, c, 0]
                first = c == 0
                if s == 1:
                    p = xq[c, 0]
                    _row3x3(a, p[q0:], p[q0 + Wq:], p[q0 + 2 * Wq:], wc, first)
                else:
                    p00, p01, p10, p11 = xq[c, 0], xq[c, 1], xq[c, 2], xq[c, 3]
                    _wide3x3s2(a, p00[q0:], p00[q0 + Wq:], p01[q0:], p01[q0 + Wq:], p10[q0:], p11[q0:], wc, first)
            if res.size > 0:
                _crop_epilogue(a, Wq, nr, o, r0, b[m], res[n, m, 0], act, lohi, alpha, beta)
            else:
                _crop_epilogue(a, Wq, nr, o, r0, b[m], o[:0], act, lohi, alpha, beta)
        m += 1
        if m == M:
            n, m = n + 1, 0


@njit(cache=True, error_model="numpy")
def _dw_setup(x, out, cg, strides, pads_begin, act, alpha, beta):
    """Per call: whether the same-size path applies, the phase geometry (Hq, Wq: OH + 2//s rows
    of OW + 2//s), the rows per block, and the Clip/Relu bounds plus a zero in x's dtype
    (float64 bounds made the clamp loop convert)."""
    s = strides[1]
    H, W, OH, OW = x.shape[3], x.shape[4], out.shape[3], out.shape[4]
    same = s == 1 and cg == 1 and pads_begin[1] == 1 and pads_begin[2] == 1 and OH == H and OW == W and W >= 2
    Hq, Wq = (H + 2, W) if same else (OH + 2 // s, OW + 2 // s)
    rows = max(1, min(OH, DW_BLOCK // Wq))
    lohi = np.zeros(3, dtype=x.dtype)
    lohi[0], lohi[1] = (0.0, np.inf) if act == ACT_RELU else (alpha, beta)
    return same, s, Hq, Wq, rows, lohi


@njit(cache=True, error_model="numpy")
def _dw_buffers(x, cg, same, s, Hq, Wq, rows):
    """Zeroed input planes (same-size: one plane of Hq*Wq + 2; else cg channels of s*s phase planes
    with 2//s of slack each) and one block of wide sums; shared by every plane (each writes the
    same interior, so the borders stay zero)."""
    if same:
        return np.zeros((1, 1, Hq * Wq + 2), dtype=x.dtype), np.empty(0, dtype=x.dtype)
    return np.zeros((cg, s * s, Hq * Wq + 2 // s), dtype=x.dtype), np.empty(rows * Wq, dtype=x.dtype)


@njit(cache=True, error_model="numpy")
def dw_range(x, w, out, strides, pads_begin, group, t0, t1, b, res, act, alpha, beta):
    """Planes t0 .. t1 (over N*M) of the wide-form conv, with their own buffers."""
    cg = x.shape[1] // group
    same, s, Hq, Wq, rows, lohi = _dw_setup(x, out, cg, strides, pads_begin, act, alpha, beta)
    xq, acc = _dw_buffers(x, cg, same, s, Hq, Wq, rows)
    if same:
        _same_planes(x, w, out, group, t0, t1, rows, b, res, act, lohi, alpha, beta, xq[0, 0])
    else:
        _phase_planes(x, w, out, group, t0, t1, s, pads_begin[1], pads_begin[2], Hq, Wq, rows,
                      b, res, act, lohi, alpha, beta, xq, acc)


@njit(cache=True, error_model="numpy")
def _dw_chunks(x, w, out, group, res, threads):
    """How many plane ranges a dw_wide conv splits into."""
    return min(x.shape[0] * out.shape[1], 64)


@njit(cache=True, error_model="numpy", parallel=True)
def _dw_par(x, w, b, out, strides, pads_begin, group, res, act, alpha, beta, threads):
    """A dw_wide conv of any float type, its planes split over `threads` (conv_direct)."""
    T, chunks = x.shape[0] * out.shape[1], _dw_chunks(x, w, out, group, res, threads)
    for k in prange(chunks):
        dw_range(x, w, out, strides, pads_begin, group, k * T // chunks, (k + 1) * T // chunks,
                  b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy")
def conv_dw_serial(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """A float32 dw_wide conv on one thread, by symbol (callback_dw.py)."""
    dw_range32(x, w, out, strides, pads_begin, group, 0, x.shape[0] * out.shape[1], b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_dw_par(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads):
    """A float32 dw_wide conv, its planes split over `threads`, each range by symbol (callback_dw.py)."""
    T, chunks = x.shape[0] * out.shape[1], _dw_chunks(x, w, out, group, res, threads)
    for k in prange(chunks):
        dw_range32(x, w, out, strides, pads_begin, group, k * T // chunks, (k + 1) * T // chunks,
                   b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", inline="always")
def conv_arrays32(xp, N, C, D, H, W, wp, M, cg, kD, kH, kW, bp, op, OD, OH, OW, rp, has_res):
    """(x, w, b, out, res): the float32 C arrays a conv callback gets as addresses and dims."""
    x = carray(voidptr(xp), (N, C, D, H, W), np.float32)
    w = carray(voidptr(wp), (M, cg, kD, kH, kW), np.float32)
    b = carray(voidptr(bp), M, np.float32)
    out = carray(voidptr(op), (N, M, OD, OH, OW), np.float32)
    res = carray(voidptr(rp), (N, M, OD, OH, OW) if has_res else (0, 0, 0, 0, 0), np.float32)
    return x, w, b, out, res


# dw_range on float32 through callback_dw.py's C callback: (x, N, C, D, H, W, w, M, C/group, kD, kH,
# kW, b, out, OD, OH, OW, res, has_res, strides, pads, group, t0, t1, act) as integers and
# addresses, alpha, beta; 1 where dw_range raised.
DW_RANGE32_SYMBOL = "onnxjit_dw_range32_v1"
DW_RANGE32_SIGNATURE = types.int64(*(types.intp,) * 29, types.float64, types.float64)
_dw_range32 = types.ExternalFunction(DW_RANGE32_SYMBOL, DW_RANGE32_SIGNATURE)


@njit(cache=True, error_model="numpy")
def dw_range32(x, w, out, strides, pads_begin, group, t0, t1, b, res, act, alpha, beta):
    """dw_range of float32 arrays (out C-contiguous; the others copied where they are not)."""
    x, w, b, res = _operands32(x, w, b, out, res)
    N, C, D, H, W = x.shape
    M, cg, kD, kH, kW = w.shape
    has_res = 1 if res.size > 0 else 0
    status = _dw_range32(x.ctypes.data, N, C, D, H, W, w.ctypes.data, M, cg, kD, kH, kW, b.ctypes.data,
                         out.ctypes.data, out.shape[2], out.shape[3], out.shape[4], res.ctypes.data, has_res,
                         strides[0], strides[1], strides[2], pads_begin[0], pads_begin[1], pads_begin[2],
                         group, t0, t1, act, alpha, beta)
    if status != 0 or x.size + w.size + b.size + res.size < 0:     # (x.size...: see conv_gemm32)
        raise RuntimeError("dw_range32: dw_range raised inside its C callback")


def pack_panels(w: np.ndarray, width: int) -> np.ndarray:
    """Filters (M, ...) as panels of `width` output channels (a last, narrower one where M is
    not a multiple), each the K = C*kh*kw rows of its channels' weights in the filter's own (c,
    i, j) order, flat float32: the layout conv_small.py and conv_lanes.py read (compile time)."""
    m = w.shape[0]
    w2 = np.asarray(w, np.float32).reshape(m, -1)
    return np.concatenate([np.ascontiguousarray(w2[m0:m0 + width].T).reshape(-1) for m0 in range(0, m, width)])


@njit(cache=True, error_model="numpy")
def vec_epilogue(act, alpha, beta):
    """(vecir EPI_* code, lo, hi) of an LLVM-IR kernel's in-register epilogue for an ACT_* code
    (winograd.py, conv_small.py). Only these four: those kernels store tiles that may end inside
    an output row, so an activation run over whole rows after would meet some twice (their
    lowerings keep to them)."""
    if act == ACT_RELU:
        return EPI_CLAMP, np.float32(0), np.float32(np.inf)
    if act == ACT_CLIP:
        return EPI_CLAMP, np.float32(alpha), np.float32(beta)
    if act == ACT_HARDSWISH:
        return EPI_HARDSWISH, np.float32(-np.inf), np.float32(np.inf)
    if act != ACT_NONE:
        raise ValueError("an activation the kernel's epilogue does not apply")
    return EPI_NONE, np.float32(-np.inf), np.float32(np.inf)


@njit(cache=True, error_model="numpy")
def vec_epilogue_silu(act, alpha, beta):
    """vec_epilogue, and SiLU as EPI_SILU (vecir.Vec.sigmoid): for the kernels whose tiles are
    whole vectors of channels or positions when they apply it (conv_small.py, conv_lanes.py)."""
    if act == ACT_SILU:
        return EPI_SILU, np.float32(-np.inf), np.float32(np.inf)
    return vec_epilogue(act, alpha, beta)


@njit(cache=True, error_model="numpy")
def _operands32(x, w, b, out, res):
    """(x, w, b, res) as a float32 callback reads them: C-contiguous (copied where they are not);
    refused unless all are float32, out is C-contiguous, b holds one value a filter and res is
    shaped like out or empty."""
    x, w, b, res = np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(b), np.ascontiguousarray(res)
    if x.itemsize != 4 or w.itemsize != 4 or b.itemsize != 4 or res.itemsize != 4 or out.itemsize != 4:
        raise ValueError("float32 conv callback: float32 operands only")
    if not out.flags.c_contiguous or b.shape[0] != w.shape[0]:
        raise ValueError("float32 conv callback: out must be C-contiguous, b hold one value a filter")
    if res.size > 0 and res.shape != out.shape:
        raise ValueError("float32 conv callback: res must be shaped like out")
    return x, w, b, res


@njit(cache=True, error_model="numpy")
def _plane(x, w, out, n, m, c0, cg, strides, pads_begin, dilations, w_lo, w_hi, b, res, act, alpha, beta, xp, tmp):
    if _is3x3(x, w, dilations):
        _plane3x3(x, w, out, n, m, c0, cg, strides, pads_begin, b, res, act, alpha, beta, xp, tmp)
    else:
        _direct_plane(x, w, out, n, m, c0, cg, strides, pads_begin, dilations, w_lo, w_hi, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def _direct_par(x, w, out, strides, pads_begin, dilations, group, w_lo, w_hi, b, res, act, alpha, beta):
    N, M, cg = x.shape[0], out.shape[1], x.shape[1] // group
    mg = M // group
    for t in prange(N * M):
        n, m = t // M, t % M
        xp, tmp = _plane_buffers(x, out, strides)
        _plane(x, w, out, n, m, (m // mg) * cg, cg, strides, pads_begin, dilations, w_lo, w_hi,
               b, res, act, alpha, beta, xp, tmp)


@njit(cache=True, error_model="numpy")
def _direct_serial(x, w, out, strides, pads_begin, dilations, group, w_lo, w_hi, b, res, act, alpha, beta):
    N, M, cg = x.shape[0], out.shape[1], x.shape[1] // group
    mg = M // group
    if _is3x3(x, w, dilations):
        xp, tmp = _plane_buffers(x, out, strides)
    else:
        xp, tmp = np.zeros((0, 0), dtype=x.dtype), np.empty(0, dtype=x.dtype)
    for n in range(N):
        for m in range(M):
            _plane(x, w, out, n, m, (m // mg) * cg, cg, strides, pads_begin, dilations, w_lo, w_hi,
                   b, res, act, alpha, beta, xp, tmp)


# ------------------------------------------------------------ Winograd F(2x2, 3x3)
#
# A 3x3 stride-1 conv computes each 2x2 output tile from a 4x4 input patch d as
# Y = A^T [(G g G^T) * (B^T d B)] A: 16 products per tile and channel pair where
# im2col's GEMM does 36, so the BLAS work drops 2.25x. The transforms run in tile
# rows: U = G g G^T (16, M, C) once per filter set, V = B^T d B (16, C, tiles), then
# 16 GEMMs M_k = U_k V_k in BLAS, then Y = A^T M A into out with the epilogue.
# Every transform loop writes one array and reads at most two, so LLVM vectorises it.


@njit(cache=True, error_model="numpy", callbacks=False)
def winograd_weights(w, u):
    """u[4i+j, m, c] = (G g G^T)[i, j] for the filters g = w[m, c] of w (M, C, 1, 3, 3); computed in
    float64. One filter row m at a time into t, then copied out in rows: storing u[:, m, c] directly
    strides by M*C, 4 KiB apart for 32 channels, and ran 15x slower (cache set conflicts)."""
    M, C = w.shape[0], w.shape[1]
    t = np.empty((C, 16))
    for m in range(M):
        for c in range(C):
            g, tc = w[m, c, 0], t[c]
            for j in range(3):   # G g in tc[0:3], tc[4:7], tc[8:11], tc[12:15], then G g G^T in place
                g0, g1, g2 = np.float64(g[0, j]), np.float64(g[1, j]), np.float64(g[2, j])
                tc[j], tc[4 + j] = g0, 0.5 * (g0 + g1 + g2)
                tc[8 + j], tc[12 + j] = 0.5 * (g0 - g1 + g2), g2
            for i in range(4):
                t0, t1, t2 = tc[4 * i], tc[4 * i + 1], tc[4 * i + 2]
                tc[4 * i + 1] = 0.5 * (t0 + t1 + t2)
                tc[4 * i + 2] = 0.5 * (t0 - t1 + t2)
                tc[4 * i + 3] = t2
        for k in range(16):
            um = u[k, m]
            for c in range(C):
                um[c] = t[c, k]


@njit(cache=True, error_model="numpy")
def _wino_input(xp, v, th0, th1, e):
    """v[4i+j, c, tile] = (B^T d B)[i, j] for the 4x4 patches d = xp[c, 2th:2th+4, 2tw:2tw+4] of the tile
    rows th in [th0, th1), numbered from th0, TW + 1 tiles a row (xp (C, Hp, Wp), Wp = 2 TW + 2).

    The last tile of each row is junk (it reads the next row): with it, tile t starts at column 2t
    of the row-concatenated column pass e = B^T d, so the row pass is one long loop per channel
    instead of 16 short ones per tile row. e is (4, (th1 - th0) Wp + 2); the junk tiles alone read
    its 2 spare elements."""
    C, Wp = xp.shape[0], xp.shape[2]
    nt = (th1 - th0) * (Wp // 2)
    for c in range(C):
        xc = xp[c]
        for th in range(th0, th1):
            r0, r1, r2, r3 = xc[2 * th], xc[2 * th + 1], xc[2 * th + 2], xc[2 * th + 3]
            o = (th - th0) * Wp
            e0, e1, e2, e3 = e[0, o:o + Wp], e[1, o:o + Wp], e[2, o:o + Wp], e[3, o:o + Wp]
            for j in range(Wp):
                e0[j] = r0[j] - r2[j]
            for j in range(Wp):
                e1[j] = r1[j] + r2[j]
            for j in range(Wp):
                e2[j] = r2[j] - r1[j]
            for j in range(Wp):
                e3[j] = r1[j] - r3[j]
        for i in range(4):
            ei = e[i]
            d0, d1, d2, d3 = v[4 * i, c], v[4 * i + 1, c], v[4 * i + 2, c], v[4 * i + 3, c]
            for t in range(nt):
                d0[t] = ei[2 * t] - ei[2 * t + 2]
            for t in range(nt):
                d1[t] = ei[2 * t + 1] + ei[2 * t + 2]
            for t in range(nt):
                d2[t] = ei[2 * t + 2] - ei[2 * t + 1]
            for t in range(nt):
                d3[t] = ei[2 * t + 1] - ei[2 * t + 3]


@njit(cache=True, error_model="numpy")
def _wino_output(mt, out, n, th0, th1, z):
    """out[n, m, 2th:2th+2, :] = A^T M A for the tiles of rows [th0, th1) as _wino_input numbers them
    (cropped to out's size: the junk tile and any odd last row or column are dropped).
    z (4, 2 * tiles) holds the row pass M A of one output channel, tile columns interleaved."""
    M, OH, OW = out.shape[1], out.shape[3], out.shape[4]
    nt = mt.shape[2]
    Wz = 2 * nt // (th1 - th0)
    for m in range(M):
        for i in range(4):
            a0, a1, a2, a3 = mt[4 * i, m], mt[4 * i + 1, m], mt[4 * i + 2, m], mt[4 * i + 3, m]
            zi = z[i]
            for t in range(nt):
                zi[2 * t] = a0[t] + a1[t] + a2[t]
                zi[2 * t + 1] = a1[t] - a2[t] - a3[t]
        o = out[n, m, 0]
        for th in range(th0, th1):
            s = (th - th0) * Wz
            z0, z1, z2, z3 = z[0, s:s + OW], z[1, s:s + OW], z[2, s:s + OW], z[3, s:s + OW]
            y = o[2 * th]
            for j in range(OW):
                y[j] = z0[j] + z1[j] + z2[j]
            if 2 * th + 1 < OH:
                y = o[2 * th + 1]
                for j in range(OW):
                    y[j] = z1[j] - z2[j] - z3[j]


@njit(cache=True, error_model="numpy")
def _wino_tiles(xp, u, out, n, t0, t1, rows):
    """Tile rows [t0, t1) of image n (xp its padded copy), `rows` tile rows at a time, with
    buffers of their own (so threads can take disjoint tile rows)."""
    C, M, Wp = xp.shape[0], u.shape[1], xp.shape[3]
    T1 = Wp // 2
    v = np.empty(16 * C * rows * T1, dtype=xp.dtype)
    mt = np.empty(16 * M * rows * T1, dtype=xp.dtype)
    e = np.zeros((4, rows * Wp + 2), dtype=xp.dtype)
    z = np.empty((4, rows * Wp), dtype=xp.dtype)
    for th0 in range(t0, t1, rows):
        th1 = min(t1, th0 + rows)
        T = (th1 - th0) * T1
        vb = v[:16 * C * T].reshape(16, C, T)
        mb = mt[:16 * M * T].reshape(16, M, T)
        _wino_input(xp[:, 0], vb, th0, th1, e)
        for k in range(16):
            gemm(u[k], vb[k], mb[k])
        _wino_output(mb, out, n, th0, th1, z)


@njit(cache=True, error_model="numpy")
def _wino_setup(x, out, parts, block):
    """(tile rows TH, tile rows per block, zeroed padded-image buffer) for conv_winograd[_par]."""
    C, M, OH, OW = x.shape[1], out.shape[1], out.shape[3], out.shape[4]
    TH, T1 = (OH + 1) // 2, (OW + 1) // 2 + 1   # tile rows; tiles a row, one junk
    rows = max(1, min(-(-TH // parts), block // (16 * (C + M) * T1)))
    return TH, rows, np.zeros((C, 1, 2 * TH + 2, 2 * T1), dtype=x.dtype)


@njit(cache=True, error_model="numpy")
def conv_winograd(x, u, b, out, pads_begin, res, act, alpha, beta, block=WINO_BLOCK):
    """2-D 3x3 stride-1 conv (x, out rank 5, D == 1) with filters pre-transformed by winograd_weights:
    out = act(conv + b [+ res]), as conv_fused. Tiles run in blocks of tile rows, per image, with
    V and M (16 x (C + M) x tiles) at most `block` elements; the epilogue runs per output plane."""
    TH, rows, xp = _wino_setup(x, out, 1, block)
    for n in range(x.shape[0]):
        _pad_image(x, n, 0, x.shape[1], (0, pads_begin[1], pads_begin[2]), xp)
        _wino_tiles(xp, u, out, n, 0, TH, rows)
        for m in range(out.shape[1]):
            _plane_epilogue(out, n, m, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_winograd_par(x, u, b, out, pads_begin, res, act, alpha, beta, parts):
    """conv_winograd with each image's tile rows in `parts` bands, one per thread (the lowering
    calls it where lower_nn._wino_parts says so), then the epilogue by planes."""
    TH, rows, xp = _wino_setup(x, out, parts, WINO_BLOCK)
    for n in range(x.shape[0]):
        _pad_image(x, n, 0, x.shape[1], (0, pads_begin[1], pads_begin[2]), xp)
        for p in prange(parts):
            _wino_tiles(xp, u, out, n, p * TH // parts, (p + 1) * TH // parts, rows)
        for m in prange(out.shape[1]):
            _plane_epilogue(out, n, m, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", callbacks=False)
def use_winograd(x_shape, w_shape, out_shape, strides, pads_begin, dilations, group, pretransformed, itemsize):
    """Whether conv_fused (pretransformed False: it transforms the filters per call) or the lowering
    (True: filters transformed once at compile time) runs this conv as conv_winograd.

    Shapes are the rank-5 ones. Winograd needs a 2-D 3x3 kernel, stride 1, dilation 1, group 1;
    it pays where GEMM work dominates its transforms (see WINO_MIN_*), and only in float64: float32
    GEMMs run on sgemm.py's kernel, and the im2col GEMM through it was as fast or faster than
    Winograd on every ResNet 3x3 conv measured (1 thread, ms, Winograd / im2col: 32 channels 56x56
    2.0-2.6 / 0.37-0.45, 64 28x28 0.39-0.50 / 0.41, 128 14x14 0.45-0.61 / 0.45-0.53, 256 7x7
    0.96-1.08 / 0.68-0.71); its 16 small GEMMs (K = the channels) keep the tile in registers
    only briefly."""
    if itemsize == 4:
        return False
    C, M = x_shape[1], w_shape[0]
    OH, OW = out_shape[3], out_shape[4]
    if not (group == 1 and x_shape[2] == 1 and out_shape[2] == 1 and w_shape[2] == 1 and w_shape[3] == 3
            and w_shape[4] == 3 and strides[1] == 1 and strides[2] == 1 and dilations[1] == 1
            and dilations[2] == 1):
        return False
    tiles = x_shape[0] * ((OH + 1) // 2) * ((OW + 1) // 2)
    if not pretransformed and tiles < WINO_MIN_TILES_PER_CALL:
        return False
    return min(C, M) >= WINO_MIN_CHANNELS and tiles >= WINO_MIN_TILES


@njit(cache=True, error_model="numpy")
def conv(x, w, b, out, strides, pads_begin, dilations, group):
    """ONNX Conv: conv_fused with no residual and no activation."""
    conv_fused(x, w, b, out, strides, pads_begin, dilations, group, out[:0], ACT_NONE, 0.0, 0.0, 1)


@njit(cache=True, error_model="numpy")
def conv_fused(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads):
    """ONNX Conv with its epilogue: out[n, m] = act(sum w * x + b[m] [+ res[n, m]]).

    ``res`` is an array shaped like ``out`` or a size-0 one (no residual); ``act``
    an ACT_* code with its parameters ``alpha``, ``beta`` (Clip: min, max); ``threads``
    the Numba thread count to split large work over (a number, not numba.get_num_threads(),
    which would keep this function out of the disk cache).
    Depthwise and small-group convolutions run directly (no im2col); the others as
    per-(group, image) GEMMs, with the epilogue applied to each block of output rows while it
    is in cache. GEMM paths: 1x1/stride 1/no pad uses x directly as the GEMM operand; float32
    2-D convs are implicit GEMMs over phase images (implicit_plan: no im2col at all); the rest
    build an im2col, from a padded copy in long contiguous runs where H/W stride is 1 and the
    width padding small ("wide" rows, cropped in the epilogue), else the general one. Direct convolutions split their
    planes over Numba's threads; GEMM and Winograd convs run on one thread here (the lowering
    calls conv_gemm_par / conv_winograd_par where splitting them pays).
    """
    C, M = x.shape[1], w.shape[0]
    if use_winograd(x.shape, w.shape, out.shape, strides, pads_begin, dilations, group, False, x.itemsize):
        u = np.empty((16, M, C), dtype=x.dtype)
        winograd_weights(w, u)
        conv_winograd(x, u, b, out, pads_begin, res, act, alpha, beta)
        return
    if is_direct(C, M, group):
        conv_direct(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads)
    else:
        conv_gemm(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta)


@njit(cache=True, error_model="numpy", callbacks=False)
def is_direct(C, M, group):
    """Depthwise and small-group convolutions run directly (conv_direct), the others as GEMMs."""
    return group > 1 and C // group <= 4 and M // group <= 4


@njit(cache=True, error_model="numpy", callbacks=False)
def direct_parallel(x_shape, w_shape, out_shape, group, threads):
    """Whether a direct convolution splits its planes over `threads` Numba threads: only
    when the work pays for the fork (PAR_MIN_FLOPS) and every thread gets planes."""
    N, M = x_shape[0], w_shape[0]
    flops = 2 * N * M * (x_shape[1] // group) * w_shape[2] * w_shape[3] * w_shape[4] * out_shape[2] * out_shape[3] * out_shape[4]
    return threads > 1 and flops >= PAR_MIN_FLOPS and N * M >= 2 * threads


@njit(cache=True, error_model="numpy")
def conv_direct(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads):
    """conv_fused's direct path (is_direct convolutions, any float type). With constant float32
    filters the lowering calls the one path a conv takes instead (conv_dw_serial, conv_dw_par,
    conv_planes_serial, conv_planes_par), so that a model compiles only those: each parallel
    one, with all it calls, costs seconds of cold compile."""
    if not direct_parallel(x.shape, w.shape, out.shape, group, threads):
        if dw_wide(x.shape, w.shape, strides, dilations):
            dw_range(x, w, out, strides, pads_begin, group, 0, x.shape[0] * out.shape[1], b, res, act, alpha, beta)
        else:
            conv_planes_serial(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta)
    elif dw_wide(x.shape, w.shape, strides, dilations):
        _dw_par(x, w, b, out, strides, pads_begin, group, res, act, alpha, beta, threads)
    else:
        conv_planes_par(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta)


@njit(cache=True, error_model="numpy")
def conv_planes_serial(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """A direct conv that is not dw_wide, plane by plane on one thread."""
    w_lo, w_hi = _tap_ranges(out.shape[4], strides[2], pads_begin[2], w.shape[4], dilations[2], x.shape[4])
    _direct_serial(x, w, out, strides, pads_begin, dilations, group, w_lo, w_hi, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy")
def conv_planes_par(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """conv_planes_serial with its planes split over Numba's threads."""
    w_lo, w_hi = _tap_ranges(out.shape[4], strides[2], pads_begin[2], w.shape[4], dilations[2], x.shape[4])
    _direct_par(x, w, out, strides, pads_begin, dilations, group, w_lo, w_hi, b, res, act, alpha, beta)


@njit(cache=True, error_model="numpy")
def conv_gemm(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """conv_fused's im2col + GEMM paths, on one thread (see conv_fused)."""
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
    res3 = res.reshape(N, M, P) if res.size > 0 else res.reshape(1, 0, 0)
    # Padded extent actually read (ends may be cut, e.g. by a floor in the output size).
    Dp = (OD - 1) * sd + (kD - 1) * dd + 1
    Hp = (OH - 1) + (kH - 1) * dh + 1
    Wp = OW + (kW - 1) * dw
    pointwise = is_pointwise(x.shape, w.shape, out.shape, strides, pads_begin)
    wide = sh == 1 and sw == 1 and Wp * 8 <= OW * 9
    own = x.itemsize == 4 and D == 1 and kD == 1 and mg >= OWN_MIN_M    # float32 2-D: the implicit GEMM on sgemm.py
    implicit = own and implicit_pays(cg, kH, kW, strides, dilations, OH, OW)
    if pointwise:
        # 1x1, stride 1, no pad: the input image already is the GEMM operand.
        x3 = x.reshape(N, C, D * H * W)
        x2 = x.reshape(N, C * D * H * W)
        rows = np.arange(cg) * P        # float32: B's rows read in place (implicit: no packing)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                o2 = out3[n, g * mg:(g + 1) * mg]
                r2 = res3[n, g * mg:(g + 1) * mg] if res.size > 0 else res3[0]
                if own:
                    implicit_rows(wg, x2[n, g * cg * P:], rows, OW, OW, 0, OH, np.empty((0, 0), dtype=x.dtype), o2, b, g * mg, r2, act, alpha, beta)
                else:
                    _gemm_epi(wg, x3[n, g * cg:(g + 1) * cg], o2, o2, OW, OW, b, g * mg, r2, act, alpha, beta)
    elif implicit:
        Hq, Wq, slot, offs, size = implicit_plan(cg, kH, kW, strides, dilations, OH, OW)
        xq = np.zeros(size, dtype=x.dtype)
        tmp = np.empty((mg, (OH - 1) * Wq + OW) if Wq != OW else (0, 0), dtype=x.dtype)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                fill_phases(x, n, g * cg, cg, strides, pads_begin, Hq, Wq, slot, xq)
                o2 = out3[n, g * mg:(g + 1) * mg]
                r2 = res3[n, g * mg:(g + 1) * mg] if res.size > 0 else res3[0]
                implicit_rows(wg, xq, offs, Wq, OW, 0, OH, tmp, o2, b, g * mg, r2, act, alpha, beta)
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
                o2 = out3[n, g * mg:(g + 1) * mg]
                r2 = res3[n, g * mg:(g + 1) * mg] if res.size > 0 else res3[0]
                _unfold_wide(xp_flat, cg, (kD, kH, kW), sd, dilations, (Dp, Hp, Wp), OD, OH, col)
                _gemm_epi(wg, col, tmp, o2, Wp, OW, b, g * mg, r2, act, alpha, beta)
    elif D == 1 and kD == 1 and P <= UNFOLD_GATHER_MAX:
        xp = np.zeros((cg, 1, (OH - 1) * sh + (kH - 1) * dh + 1, (OW - 1) * sw + (kW - 1) * dw + 1), dtype=x.dtype)
        idx = np.empty(P, dtype=np.uint32)
        col = np.empty((K, P), dtype=x.dtype)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                _unfold_gather(x, n, g * cg, cg, kH, kW, strides, dilations, OH, OW, pads_begin, xp, idx, col)
                o2 = out3[n, g * mg:(g + 1) * mg]
                r2 = res3[n, g * mg:(g + 1) * mg] if res.size > 0 else res3[0]
                _gemm_epi(wg, col, o2, o2, OW, OW, b, g * mg, r2, act, alpha, beta)
    else:
        col = np.zeros((K, P), dtype=x.dtype)
        for g in range(group):
            wg = w2[g * mg:(g + 1) * mg]
            for n in range(N):
                _unfold(x, n, g * cg, cg, (kD, kH, kW), strides, pads_begin,
                        dilations, (OD, OH, OW), 0, OH, col)
                o2 = out3[n, g * mg:(g + 1) * mg]
                r2 = res3[n, g * mg:(g + 1) * mg] if res.size > 0 else res3[0]
                _gemm_epi(wg, col, o2, o2, OW, OW, b, g * mg, r2, act, alpha, beta)


@njit(cache=True, error_model="numpy")
def conv_gemv(x, w, b, out, res, act, alpha, beta):
    """A float32 conv with one input and one output position an image (1x1 spatial input and
    filters, group 1: a fully connected layer written as Conv, as squeeze-excite blocks do):
    out[n, m] = act(w[m] . x[n] + b[m] [+ res[n, m]]), one contiguous dot product an output
    (linalg.gemv_t) and the epilogue over the M values. Through conv_gemm32 a 256 -> 64 one
    took 15.6 us (a 32-column tile and its packing for one column); so, 1.7."""
    N, M = x.shape[0], w.shape[0]
    w2 = np.ascontiguousarray(w).reshape(M, w.size // M)
    for n in range(N):
        o2 = out[n].reshape(M, 1)
        gemv_t(np.ascontiguousarray(x[n]).reshape(-1), w2, o2.reshape(M))
        _crop_epi(o2, o2, 1, 1, b, 0, res[n].reshape(M, 1) if res.size > 0 else o2[:0], act, alpha, beta)


# conv_gemm on float32 through callback_conv_gemm.py's C callback: (x, N, C, D, H, W, w, M, C/group, kD, kH,
# kW, b, out, OD, OH, OW, res, has_res, strides, pads, dilations, group, act) as integers and
# addresses, alpha, beta; it returns 1 where conv_gemm raised. The version names the ABI.
CONV_GEMM32_SYMBOL = "onnxjit_conv_gemm32_v1"
CONV_GEMM32_SIGNATURE = types.int64(*(types.intp,) * 30, types.float64, types.float64)
_conv_gemm32 = types.ExternalFunction(CONV_GEMM32_SYMBOL, CONV_GEMM32_SIGNATURE)


@njit(cache=True, error_model="numpy")
def conv_gemm32(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """conv_gemm of float32 arrays (out C-contiguous; the others are copied where they are not)
    by symbol: one compiled copy of its paths serves this call, conv_gemm_par's channel bands
    and every model (callback_conv_gemm.py)."""
    x, w, b, res = _operands32(x, w, b, out, res)
    N, C, D, H, W = x.shape
    M, cg, kD, kH, kW = w.shape
    has_res = 1 if res.size > 0 else 0    # not inline in the call: Numba refuses a long call holding a branch
    status = _conv_gemm32(x.ctypes.data, N, C, D, H, W, w.ctypes.data, M, cg, kD, kH, kW, b.ctypes.data,
                          out.ctypes.data, out.shape[2], out.shape[3], out.shape[4],
                          res.ctypes.data, has_res, strides[0], strides[1], strides[2],
                          pads_begin[0], pads_begin[1], pads_begin[2], dilations[0], dilations[1], dilations[2],
                          group, act, alpha, beta)
    # x, w, b and res may be copies, read through addresses Numba cannot see: used here, after
    # the call, they stay allocated through it
    if status != 0 or x.size + w.size + b.size + res.size < 0:
        raise RuntimeError("conv_gemm32: conv_gemm raised inside its C callback")


# Large 2-D outputs split by output rows, not channels: a channel band builds the whole im2col,
# so the unfold did not get faster with threads (the ResNet 7x7 stem at 2 threads: 1.2 ms against
# 1.4 at one; its unfold alone is 0.48). A row band unfolds only its own rows and runs the GEMM on
# all the filters. Both kinds of band are one parallel kernel, and the band's epilogue rows are
# typed contiguous so no callee compiles a second time for strided rows (light_resnet50's cold
# compile at 2 threads: 22-24 s before row bands, 30.6 with a kernel of their own and strided
# rows, 27.9 now).
ROWS_SPLIT_MIN_OUT = 1024   # output positions an image, at least


@njit(cache=True, error_model="numpy", callbacks=False)
def rows_split(x_shape, w_shape, out_shape, strides, pads_begin, group, parts):
    """Whether conv_gemm_par splits this conv by output rows (2-D, group 1, large; a 1x1 conv
    only where it is pointwise: its row bands are column bands of the image itself)."""
    OH, OW = out_shape[3], out_shape[4]
    return (group == 1 and x_shape[2] == 1 and w_shape[2] == 1
            and (w_shape[3] * w_shape[4] > 1 or is_pointwise(x_shape, w_shape, out_shape, strides, pads_begin))
            and OH * OW >= ROWS_SPLIT_MIN_OUT and OH >= 2 * parts)


@njit(cache=True, error_model="numpy", callbacks=False)
def is_pointwise(x_shape, w_shape, out_shape, strides, pads_begin):
    """A 1x1 conv with stride 1, no pad and the input's size (so no end pad either): the image
    itself is its GEMM's right operand. The size alone does not say it: a stride 2 with pads
    of 16 keeps 32x32 at 32x32."""
    return (w_shape[2] * w_shape[3] * w_shape[4] == 1 and strides[0] == 1 and strides[1] == 1 and strides[2] == 1
            and pads_begin[0] == 0 and pads_begin[1] == 0 and pads_begin[2] == 0
            and x_shape[2] == out_shape[2] and x_shape[3] == out_shape[3] and x_shape[4] == out_shape[4])


@njit(cache=True, error_model="numpy")
def _row_band(x, w, b, out, strides, pads_begin, dilations, res, act, alpha, beta, oh0, oh1):
    """Output rows oh0 .. oh1 of every image: im2col of those rows, the GEMM on all filters
    into their columns of out, the epilogue (the convs the implicit GEMM does not take)."""
    N, M, OH, OW = out.shape[0], out.shape[1], out.shape[3], out.shape[4]
    kH, kW = w.shape[3], w.shape[4]
    K = w.shape[1] * kH * kW
    w2 = w.reshape(M, K)
    out3 = out.reshape(N, M, OH * OW)
    res3 = res.reshape(N, M, OH * OW) if res.size > 0 else res.reshape(1, 0, 0)
    q0, q1 = oh0 * OW, oh1 * OW
    col = np.zeros((K, q1 - q0), dtype=x.dtype)
    for n in range(N):
        o2 = out3[n, :, q0:q1]
        _unfold(x, n, 0, x.shape[1], (w.shape[2], kH, kW), strides, pads_begin, dilations,
                (out.shape[2], OH, OW), oh0, oh1, col)
        gemm(w2, col, o2)
        for m in range(M):
            o = out3[n, m, q0:q1]     # typed contiguous (a row of out3[n, :, q0:q1] is not): no new specialisations
            _epilogue(o, b[m], res3[n, m, q0:q1] if res.size > 0 else o[:0], act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_gemm_par(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, parts):
    """conv_gemm (group 1) in `parts` bands, one per thread: bands of output rows where
    rows_split says so, else of output channels, each a conv_gemm of its own (each band builds
    its own im2col, in parallel). Row bands of a float32 2-D conv share one set of phase
    images (the implicit GEMM's), built first. The lowering calls it where
    lower_nn._conv_gemm_parts says the GEMM is worth splitting, so serial models never
    compile it. One parallel loop: each costs seconds of cold compile."""
    by_rows, implicit, Wq, offs, xq, size = _band_setup(x, w, out, strides, pads_begin, dilations, group, parts)
    for p in prange(parts):
        # p as int64: the parallel loop's own copy types it uint64, and _conv_band then compiled twice
        _conv_band(x, w, b, out, strides, pads_begin, dilations, res, act, alpha, beta, np.int64(p), parts,
                   by_rows, implicit, Wq, offs, xq, size)


@njit(cache=True, error_model="numpy")
def _band_setup(x, w, out, strides, pads_begin, dilations, group, parts):
    """conv_gemm_par's serial part: the kind of band, and for implicit row bands the shared
    phase images of every image (N x size floats) with their tap offsets (a pointwise conv's
    are its input, as it is)."""
    N, M, H, W = out.shape[0], out.shape[1], out.shape[3], out.shape[4]
    by_rows = rows_split(x.shape, w.shape, out.shape, strides, pads_begin, group, parts)
    kH, kW = w.shape[3], w.shape[4]
    pointwise = is_pointwise(x.shape, w.shape, out.shape, strides, pads_begin)
    implicit = (by_rows and x.itemsize == 4 and M >= OWN_MIN_M
                and (pointwise or implicit_pays(x.shape[1], kH, kW, strides, dilations, H, W)))
    if implicit and pointwise:
        # the images themselves are the phase images: B's rows are the channels' planes
        C, P = x.shape[1], H * W
        return by_rows, implicit, W, np.arange(C) * P, np.ascontiguousarray(x).reshape(-1), C * P
    Hq, Wq, slot, offs, size = implicit_plan(x.shape[1], kH, kW, strides, dilations, H, W)
    xq = np.zeros(N * size if implicit else 0, dtype=x.dtype)
    for n in range(N if implicit else 0):
        fill_phases(x, n, 0, x.shape[1], strides, pads_begin, Hq, Wq, slot, xq[n * size:(n + 1) * size])
    return by_rows, implicit, Wq, offs, xq, size


@njit(cache=True, error_model="numpy")
def _conv_band(x, w, b, out, strides, pads_begin, dilations, res, act, alpha, beta, p, parts,
               by_rows, implicit, Wq, offs, xq, size):
    """Band p of conv_gemm_par: output rows over the shared phase images xq (implicit), or
    output rows with their own im2col (_row_band), or output channels."""
    N, M, D, H, W = out.shape
    if implicit:
        oh0, oh1 = p * H // parts, (p + 1) * H // parts
        w2 = w.reshape(M, offs.shape[0])
        out3 = out.reshape(N, M, H * W)
        res3 = res.reshape(N, M, H * W) if res.size > 0 else res.reshape(1, 0, 0)
        clamped, lo, hi = _clamp_bounds(act, alpha, beta, out)
        # With no junk columns (Wq == W: pointwise, 1xk) the GEMM writes the band's rows of out
        # itself, bias, residual and a clamp in its registers (a 1x1 conv 8 -> 48 on 112x112 at 2
        # threads: 130 -> us); else into tmp, cropped into out by the epilogue.
        tmp = np.empty((M, (oh1 - oh0 - 1) * Wq + W) if Wq != W else (0, 0), dtype=x.dtype)
        for n in range(N):
            xn = xq[n * size:(n + 1) * size]
            if Wq == W:
                o2 = out3[n, :, oh0 * W:oh1 * W]
                r2 = res3[n, :, oh0 * W:oh1 * W] if res.size > 0 else res3[0]
                if clamped:
                    gemm_implicit(w2, xn[oh0 * Wq:], offs, o2, b, r2, lo, hi)
                    continue
                gemm_implicit(w2, xn[oh0 * Wq:], offs, o2, b[:0], r2[:0], lo, hi)
            else:
                gemm_implicit(w2, xn[oh0 * Wq:], offs, tmp, b[:0], tmp[:0], lo, hi)
            for m in range(M):
                o = out3[n, m, oh0 * W:oh1 * W]     # typed contiguous (a row of o2 is not)
                r = res3[n, m, oh0 * W:oh1 * W] if res.size > 0 else o[:0]
                if Wq != W:
                    _crop_row(tmp[m], o, Wq, W, b[m], r, clamped, lo, hi)
                    if clamped:
                        continue
                _epilogue(o, b[m], r, act, alpha, beta)
    elif by_rows:
        _row_band(x, w, b, out, strides, pads_begin, dilations, res, act, alpha, beta,
                  p * H // parts, (p + 1) * H // parts)
    else:
        lo, hi = p * M // parts, (p + 1) * M // parts
        for n in range(N):
            o = out[n, lo:hi].reshape((1, hi - lo, D, H, W))
            r = res[n, lo:hi].reshape((1, hi - lo, D, H, W)) if res.size > 0 else res
            band_conv(x[n:n + 1], w[lo:hi], b[lo:hi], o, strides, pads_begin, dilations, 1, r, act, alpha, beta)


def band_conv(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):  # pragma: no cover
    raise NotImplementedError("compiled code calls the overload below")


@overload(band_conv)
def _band_conv(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """A channel band of conv_gemm_par: conv_gemm32 (by symbol) for float32, else conv_gemm,
    chosen while typing so that a float32 band never compiles conv_gemm's code into itself."""
    fn = conv_gemm32 if x.dtype == types.float32 else conv_gemm

    def impl(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
        fn(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta)
    return impl


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
                    n_w = w_hi - w_lo
                    o0 = w_lo * sw + offw
                    for i_d in range(d_lo, d_hi):
                        od_ = om[i_d * sd + offd]
                        for i_h in range(h_lo, h_hi):
                            dst = od_[i_h * sh + offh]
                            base = (i_d * H + i_h) * W + w_lo
                            src = col[row, base:base + n_w]
                            if sw == 1:
                                d_seg = dst[o0:o0 + n_w]
                                for j in range(n_w):
                                    d_seg[j] += src[j]
                            else:
                                d_str = dst[o0:o0 + (n_w - 1) * sw + 1:sw]
                                for j in range(n_w):
                                    d_str[j] += src[j]
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
            gemm(wt, x3[n, g * cg:(g + 1) * cg], col)
            _fold_add(col, out, n, g * mg, mg, (kD, kH, kW), strides, pads_begin,
                      dilations, (D, H, W))


# ------------------------------------------------------------------------- Pooling


@njit(cache=True, error_model="numpy")
def _tap_ranges(n_out, stride, pad, kernel, dilation, size):
    """Per tap k: the output range [lo, hi) whose tap k (o*stride - pad + k*dilation) is in [0, size)."""
    lo = np.empty(kernel, dtype=np.int64)
    hi = np.empty(kernel, dtype=np.int64)
    for k in range(kernel):
        lo[k], hi[k] = _valid_range(n_out, stride, k * dilation - pad, size)
    return lo, hi


@njit(cache=True, error_model="numpy", inline="always")
def _nanmax(b, v):
    """max ignoring NaN (NaN only if both are)."""
    return v if v > b or b != b else b


@njit(cache=True, error_model="numpy", inline="always")
def _max_rows(dst, a, b):
    """dst = _nanmax(a, b) elementwise. Into a third array: updated in place, LLVM turned the
    select into a masked store (vmaskmovps), which is slow."""
    for j in range(dst.shape[0]):
        dst[j] = _nanmax(a[j], b[j])


@njit(cache=True, error_model="numpy", inline="always")
def _max_cols(o, src, first, kW, step):
    """o[j] = first[step*j] if that is NaN, else the _nanmax over src[step*j + kw], kw < kW;
    kW 2, 3 and step 1, 2 spelt as constants, which vectorise."""
    n = o.shape[0]
    if kW == 3 and step == 2:
        for j in range(n):
            f = first[2 * j]
            v = _nanmax(_nanmax(src[2 * j], src[2 * j + 1]), src[2 * j + 2])
            o[j] = f if f != f else v
    elif kW == 2 and step == 2:
        for j in range(n):
            f = first[2 * j]
            v = _nanmax(src[2 * j], src[2 * j + 1])
            o[j] = f if f != f else v
    elif kW == 3 and step == 1:
        for j in range(n):
            f = first[j]
            v = _nanmax(_nanmax(src[j], src[j + 1]), src[j + 2])
            o[j] = f if f != f else v
    else:
        for j in range(n):
            v = src[step * j]
            for kw in range(1, kW):
                v = _nanmax(v, src[step * j + kw])
            f = first[step * j]
            o[j] = f if f != f else v


@njit(cache=True, error_model="numpy")
def _max_pool2d(x, out, kH, kW, sh, sw, ph, pw):
    """2-D MaxPool without Indices, dilation 1; returns False (doing nothing) when a window has
    no in-bounds tap (max_pool writes 0 there). Separable: the max over a window's rows into a
    row buffer (contiguous), then over its columns. max_pool's rule (a later tap wins only if
    strictly greater) gives NaN when the window's first tap is NaN and else the max of its
    other values, which is what the two NaN-skipping passes plus a check of the first tap give."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    OH, OW = out.shape[3], out.shape[4]
    h_start, h_lo, h_hi = _window_ranges(OH, sh, ph, kH, 1, H)
    w_start, w_lo, w_hi = _window_ranges(OW, sw, pw, kW, 1, W)
    for o in range(OH):
        if h_lo[o] >= h_hi[o]:
            return False
    for o in range(OW):
        if w_lo[o] >= w_hi[o]:
            return False
    i_lo, i_hi = OW, 0     # outputs whose whole window is in bounds: [i_lo, i_hi)
    for o in range(OW):
        if w_lo[o] == 0 and w_hi[o] == kW:
            i_lo, i_hi = min(i_lo, o), o + 1
    if i_hi <= i_lo:
        i_lo = i_hi = 0
    ping, pong = np.empty(W, dtype=x.dtype), np.empty(W, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            xc = x[n, c, 0]
            oc = out[n, c, 0]
            for oh in range(OH):
                r, cnt = h_start[oh] + h_lo[oh], h_hi[oh] - h_lo[oh]
                x0 = xc[r]
                if cnt == 1:
                    for j in range(W):
                        ping[j] = x0[j]
                else:   # (no swapping of ping and pong: reassigned arrays cost refcounting per row)
                    _max_rows(ping, x0, xc[r + 1])
                    for k in range(2, cnt):
                        _max_rows(pong, ping, xc[r + k])
                        for j in range(W):
                            ping[j] = pong[j]
                src = ping
                o = oc[oh]
                if i_hi > i_lo:
                    _max_cols(o[i_lo:i_hi], src[i_lo * sw - pw:], x0[i_lo * sw - pw:], kW, sw)
                for e in range(OW - (i_hi - i_lo)):     # the border windows, tap by tap
                    ow = e if e < i_lo else e + i_hi - i_lo
                    v = src[w_start[ow] + w_lo[ow]]
                    for kw in range(w_lo[ow] + 1, w_hi[ow]):
                        v = _nanmax(v, src[w_start[ow] + kw])
                    f = x0[w_start[ow] + w_lo[ow]]
                    o[ow] = f if f != f else v
    return True


@njit(cache=True, error_model="numpy")
def max_pool(x, out, indices, kernel, strides, pads_begin, dilations, storage_order):
    """ONNX MaxPool (padding ignored; a later tap wins only if strictly greater, so NaN never replaces an earlier value) plus the Indices output.

    ``indices`` is int64 shaped like ``out``; pass a size-0 rank-5 int64 array to skip it.
    Index = flat position in x: row-major over (n, c, d, h, w) when storage_order == 0;
    with storage_order == 1 the spatial part is column-major (d + h*D + w*D*H) while n, c
    stay row-major.  With the leading-size-1 layouts of the module docstring this is exactly
    onnx.reference's 2-D formula (c*H*W + h + w*H), its 3-D one, and its 1-D one (which
    ignores storage_order), so no extra parameter is needed.
    A window with no in-bounds element yields 0 and index -1 (as onnx.reference 2-D does).
    """
    if (indices.size == 0 and x.shape[2] == 1 and kernel[0] == 1 and dilations[1] == 1 and dilations[2] == 1
            and _max_pool2d(x, out, kernel[1], kernel[2], strides[1], strides[2], pads_begin[1], pads_begin[2])):
        return
    N, C, D, H, W = x.shape
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    kD, kH, kW = kernel
    sw = strides[2]
    dd, dh, dw = dilations
    d_start, d_lo, d_hi = _window_ranges(OD, strides[0], pads_begin[0], kD, dd, D)
    h_start, h_lo, h_hi = _window_ranges(OH, strides[1], pads_begin[1], kH, dh, H)
    w_start, w_lo, w_hi = _window_ranges(OW, sw, pads_begin[2], kW, dw, W)
    t_lo, t_hi = _tap_ranges(OW, sw, pads_begin[2], kW, dw, W)
    want_idx = indices.size > 0
    xf = x.reshape(-1)
    of = out.reshape(-1)
    idf = indices.reshape(-1)
    best = np.empty(OW, dtype=x.dtype)   # running max of one output row
    arg = np.empty(OW, dtype=np.int64)   # flat row-major index of that max, -1 if none
    o = 0
    for nc in range(N * C):
        base = nc * D * H * W
        for od in range(OD):
            for oh in range(OH):
                if d_lo[od] >= d_hi[od] or h_lo[oh] >= h_hi[oh]:
                    best[:] = 0
                    arg[:] = -1
                else:
                    # Start from each window's first in-bounds tap, then scan all taps in
                    # (kd, kh, kw) order, one whole output row per tap.
                    r = (base + ((d_start[od] + d_lo[od] * dd) * H + h_start[oh] + h_lo[oh] * dh) * W)
                    for ow in range(OW):
                        if w_lo[ow] < w_hi[ow]:
                            arg[ow] = r + w_start[ow] + w_lo[ow] * dw
                            best[ow] = xf[arg[ow]]
                        else:
                            arg[ow] = -1
                            best[ow] = 0
                    for kd in range(d_lo[od], d_hi[od]):
                        for kh in range(h_lo[oh], h_hi[oh]):
                            r = base + ((d_start[od] + kd * dd) * H + h_start[oh] + kh * dh) * W
                            for kw in range(kW):
                                lo, n_w = t_lo[kw], t_hi[kw] - t_lo[kw]
                                i0 = r + kw * dw - pads_begin[2] + lo * sw  # x index of output lo
                                b_seg = best[lo:lo + n_w]
                                x_str = xf[i0:i0 + (n_w - 1) * sw + 1:sw]
                                if want_idx:
                                    a_seg = arg[lo:lo + n_w]
                                    for j in range(n_w):
                                        v = x_str[j]
                                        if v > b_seg[j]:
                                            b_seg[j] = v
                                            a_seg[j] = i0 + j * sw
                                elif sw == 1:
                                    x_seg = xf[i0:i0 + n_w]
                                    for j in range(n_w):
                                        v = x_seg[j]
                                        b = b_seg[j]
                                        b_seg[j] = v if v > b else b  # branch-free max
                                else:
                                    for j in range(n_w):
                                        v = x_str[j]
                                        b = b_seg[j]
                                        b_seg[j] = v if v > b else b
                o_seg = of[o:o + OW]
                for ow in range(OW):
                    o_seg[ow] = best[ow]
                if want_idx:
                    i_seg = idf[o:o + OW]
                    for ow in range(OW):
                        bi = arg[ow]
                        if bi >= 0 and storage_order != 0:  # column-major spatial part
                            sp = bi - base
                            bi = base + sp // (W * H) + ((sp // W) % H) * D + (sp % W) * D * H
                        i_seg[ow] = bi
                o += OW


@njit(cache=True, error_model="numpy")
def _pool_sums(x, kernel, strides, pads_begin, dilations, p, acc):
    """Sum of x (p == 0) or |x|^p over the in-bounds taps of every pooling window into float64 acc (N*C, OD, OH, OW).

    One output row is accumulated per tap so the innermost loop runs along W.
    """
    N, C, D, H, W = x.shape
    kD, kH, kW = kernel
    OD, OH, OW = acc.shape[1], acc.shape[2], acc.shape[3]
    sw = strides[2]
    dd, dh, dw = dilations
    d_start, d_lo, d_hi = _window_ranges(OD, strides[0], pads_begin[0], kD, dd, D)
    h_start, h_lo, h_hi = _window_ranges(OH, strides[1], pads_begin[1], kH, dh, H)
    t_lo, t_hi = _tap_ranges(OW, sw, pads_begin[2], kW, dw, W)
    xf = x.reshape(-1)
    af = acc.reshape(-1)
    af[:] = 0.0
    pf = float(p)
    a0 = 0  # start of the current output row in af
    for nc in range(N * C):
        base = nc * D * H * W
        for od in range(OD):
            for oh in range(OH):
                for kd in range(d_lo[od], d_hi[od]):
                    for kh in range(h_lo[oh], h_hi[oh]):
                        r = base + ((d_start[od] + kd * dd) * H + h_start[oh] + kh * dh) * W
                        for kw in range(kW):
                            lo, n_w = t_lo[kw], t_hi[kw] - t_lo[kw]
                            i0 = r + kw * dw - pads_begin[2] + lo * sw  # x index of output lo
                            a_seg = af[a0 + lo:a0 + lo + n_w]
                            x_str = xf[i0:i0 + (n_w - 1) * sw + 1:sw]
                            if pf == 0.0 and sw == 1:
                                x_seg = xf[i0:i0 + n_w]
                                for j in range(n_w):
                                    a_seg[j] += x_seg[j]
                            elif pf == 0.0:
                                for j in range(n_w):
                                    a_seg[j] += x_str[j]
                            elif pf == 2.0:
                                for j in range(n_w):
                                    v = float(x_str[j])
                                    a_seg[j] += v * v
                            elif pf == 1.0:
                                for j in range(n_w):
                                    a_seg[j] += abs(float(x_str[j]))
                            else:
                                for j in range(n_w):
                                    a_seg[j] += abs(float(x_str[j])) ** pf
                a0 += OW


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
    dd, dh, dw = dilations
    if count_include_pad:
        # Divisor = taps inside the padded extent, i.e. [0, L + pb + pe) in padded coordinates.
        _, lo, hi = _window_ranges(OD, sd, 0, kD, dd, D + pd + pads_end[0])
        d_cnt = hi - lo
        _, lo, hi = _window_ranges(OH, sh, 0, kH, dh, H + ph + pads_end[1])
        h_cnt = hi - lo
        _, lo, hi = _window_ranges(OW, sw, 0, kW, dw, W + pw + pads_end[2])
        w_cnt = hi - lo
    else:
        _, lo, hi = _window_ranges(OD, sd, pd, kD, dd, D)
        d_cnt = hi - lo
        _, lo, hi = _window_ranges(OH, sh, ph, kH, dh, H)
        h_cnt = hi - lo
        _, lo, hi = _window_ranges(OW, sw, pw, kW, dw, W)
        w_cnt = hi - lo
    acc = np.empty((N * C, OD, OH, OW), dtype=np.float64)
    _pool_sums(x, kernel, strides, pads_begin, dilations, 0, acc)
    af = acc.reshape(-1)
    of = out.reshape(-1)
    o = 0
    for nc in range(N * C):
        for od in range(OD):
            for oh in range(OH):
                dh_cnt = d_cnt[od] * h_cnt[oh]
                o_seg = of[o:o + OW]
                a_seg = af[o:o + OW]
                for ow in range(OW):
                    o_seg[ow] = a_seg[ow] / (dh_cnt * w_cnt[ow])
                o += OW


@njit(cache=True, error_model="numpy")
def lp_pool(x, out, kernel, strides, pads_begin, dilations, p):
    """ONNX LpPool: (sum over in-bounds taps of |x|^p)^(1/p); padding contributes 0."""
    N, C = x.shape[0], x.shape[1]
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    acc = np.empty((N * C, OD, OH, OW), dtype=np.float64)
    _pool_sums(x, kernel, strides, pads_begin, dilations, p, acc)
    accf = acc.reshape(-1)
    of = out.reshape(-1)
    pf = float(p)
    for i in range(of.shape[0]):
        if pf == 2.0:
            of[i] = np.sqrt(accf[i])
        elif pf == 1.0:
            of[i] = accf[i]
        else:
            of[i] = accf[i] ** (1.0 / pf)


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
                out[n, c] = sum64(row) / S


# ------------------------------------------------------------------- Normalization


@njit(cache=True, error_model="numpy")
def lrn(x, out, size, alpha, beta, bias):
    """ONNX LRN over channels of x (N, C, S): y = x / (bias + alpha/size * sum_{c' near c} x^2)^beta."""
    N, C, S = x.shape
    lo_off = (size - 1) // 2          # floor((size-1)/2) channels before
    hi_off = size - 1 - lo_off        # ceil((size-1)/2) channels after
    scale = alpha / size
    sq = np.empty(S, dtype=np.float64)  # sum of squares over the channel window, per position
    for n in range(N):
        xn = x[n]
        for c in range(C):
            sq[:] = 0.0
            for cc in range(max(0, c - lo_off), min(C - 1, c + hi_off) + 1):
                row = xn[cc]
                for s in range(S):
                    v = float(row[s])
                    sq[s] += v * v
            src = xn[c]
            dst = out[n, c]
            for s in range(S):
                dst[s] = src[s] / (bias + scale * sq[s]) ** beta


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
