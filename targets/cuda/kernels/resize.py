"""CUDA ONNX Resize / Upsample mirroring targets/cpu/kernels/resize.py: the same
`resize(x, out, scales, roi, mode, coord_mode, nearest_mode, cubic_a, exclude_outside,
extrapolation_value, antialias)` launcher, the same int codes (the host-side helpers
resize_plan / expand_roi / resize_codes stay in the CPU module), the same numerics.

One thread per output element. Nearest: pick one source index per axis and copy (exact
for every dtype). Linear / cubic / antialias: the thread recomputes its own taps per axis
(x_original, window start, weights, normalisations, in the CPU's operation order) and
evaluates the CPU's separable float64 passes as nested sums: the first resized axis is the
innermost sum, as the CPU resamples axes in ascending order. An extrapolated position
of a pass is the constant extrapolation_value for the later passes, as on the CPU.

Bit-for-bit with the CPU: NVVM contracts `a * b + c` into an FMA by default, which rounds
once instead of twice; every product that feeds a sum goes through `_mul` (libdevice
dmul_rn, never contracted).

`scales` (float64) and `roi` (float32 or float64: its arithmetic is done in that dtype,
like the CPU and onnx.reference) are device arrays read by the kernels; shapes travel as
tuples padded to MAX_RANK. Integer outputs round half to even and saturate.
"""
import math

import numpy as np
from numba import config, cuda, float64, int64
from numba.cuda import libdevice

_SIM = bool(config.ENABLE_CUDASIM)
BLOCK = 8 if _SIM else 256      # threads per block
GRID = 2 if _SIM else 4096      # most blocks per launch; kernels loop over the rest
MAX_RANK = 8                    # local-array size: tensors of higher rank are rejected

MODE_NEAREST, MODE_LINEAR, MODE_CUBIC = range(3)
(COORD_HALF_PIXEL, COORD_HALF_PIXEL_SYMMETRIC, COORD_PYTORCH_HALF_PIXEL, COORD_ALIGN_CORNERS,
 COORD_ASYMMETRIC, COORD_TF_CROP_AND_RESIZE, COORD_TF_HALF_PIXEL_FOR_NN) = range(7)
(NEAREST_ROUND_PREFER_FLOOR, NEAREST_ROUND_PREFER_CEIL, NEAREST_FLOOR, NEAREST_CEIL,
 NEAREST_SIMPLE) = range(5)
KIND_FLOAT, KIND_INT, KIND_BOOL = range(3)


# --------------------------------------------------------------------------- scalar pieces


if _SIM:
    @cuda.jit(device=True)
    def _mul(a, b):
        return float64(a) * float64(b)
else:
    @cuda.jit(device=True)
    def _mul(a, b):
        """a * b in float64, never fused with a following add (the CPU rounds twice)."""
        return libdevice.dmul_rn(float64(a), float64(b))


@cuda.jit(device=True)
def _clamp(v, lo, hi):
    """min(max(v, lo), hi) (the builtins do not compile in kernels with numba 0.68's cuda)."""
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@cuda.jit(device=True)
def _at_least_one(v):
    return v if v > 1.0 else 1.0


@cuda.jit(device=True)
def _at_most_one(v):
    return v if v < 1.0 else 1.0


@cuda.jit(device=True)
def _store(out, i, v, kind, lo, hi):
    """out[i] = v (float64) cast like the CPU's _to_out: plain cast for floats, v != 0 for
    bool, round half to even then saturate (NaN -> 0) for integers."""
    if kind == KIND_FLOAT:
        out[i] = v
    elif kind == KIND_BOOL:
        out[i] = v != 0.0
    elif v != v:
        out[i] = 0
    else:
        r = math.floor(v)
        d = v - r
        if d > 0.5 or (d == 0.5 and r - 2.0 * math.floor(r / 2.0) != 0.0):
            r += 1.0
        if r <= float64(lo):
            out[i] = lo
        elif r >= float64(hi):
            out[i] = hi
        else:
            out[i] = r


@cuda.jit(device=True)
def _is_identity(in_len, out_len, scale, roi, ax, nd):
    """The reference's skip test (math.isclose, rel_tol 1e-9, abs_tol 0)."""
    if out_len != in_len:
        return False
    if not abs(scale - 1.0) <= 1e-9 * _at_least_one(abs(scale)):
        return False
    if roi.size > 0:
        r0 = float64(roi[ax])
        r1 = float64(roi[ax + nd])
        if r0 != 0.0:
            return False
        if not abs(r1 - 1.0) <= 1e-9 * _at_least_one(abs(r1)):
            return False
    return True


@cuda.jit(device=True)
def _x_original(y, scale, in_len, out_len, coord_mode, roi, ax, nd):
    """Source coordinate of output index y; second value: tf_crop_and_resize extrapolated."""
    ow = _mul(scale, in_len)  # the reference's (real-valued) output_width
    if coord_mode == COORD_HALF_PIXEL:
        return (y + 0.5) / scale - 0.5, False
    if coord_mode == COORD_ASYMMETRIC:
        return y / scale, False
    if coord_mode == COORD_TF_HALF_PIXEL_FOR_NN:
        return (y + 0.5) / scale, False
    if coord_mode == COORD_ALIGN_CORNERS:
        if ow == 1.0:
            return 0.0, False
        return y * (in_len - 1) / (ow - 1.0), False
    if coord_mode == COORD_PYTORCH_HALF_PIXEL:
        if ow == 1.0:
            return -0.5, False
        return (y + 0.5) / scale - 0.5, False
    if coord_mode == COORD_HALF_PIXEL_SYMMETRIC:
        adjustment = out_len / ow
        center = in_len / 2
        return _mul(center, 1.0 - adjustment) + (y + 0.5) / scale - 0.5, False
    # COORD_TF_CROP_AND_RESIZE: roi arithmetic in the roi dtype (an exact float64 product
    # of two float32 values rounds to the float32 product)
    rt = roi.dtype.type
    r0 = roi[ax]
    d = rt(roi[ax + nd] - r0)
    n1 = rt(in_len - 1)
    start = float64(rt(_mul(r0, n1)))
    if ow == 1.0:
        xo = float64(rt(rt(_mul(d, n1)) / rt(2)))
    else:
        xo = y * float64(d) * (in_len - 1) / (ow - 1.0)
    xo = xo + start
    return xo, (xo < 0.0) or (xo > in_len - 1)


@cuda.jit(device=True)
def _axis_position(rem, a, in_shape, out_shape, nd, scales, roi, coord_mode):
    """Peel axis a's output coordinate j off the flat-index remainder rem: (rem, j, resized,
    x_original, extrapolated); an identity axis (the CPU skips it) is not resized."""
    out_len = out_shape[a]
    j = rem % out_len
    if _is_identity(in_shape[a], out_len, scales[a], roi, a, nd):
        return rem // out_len, j, False, 0.0, False
    xo, ext = _x_original(float64(j), scales[a], in_shape[a], out_len, coord_mode, roi, a, nd)
    return rem // out_len, j, True, xo, ext


@cuda.jit(device=True)
def _window(xo, half):
    """(ratio, start): fractional position and first tap of the reference's edge-padded window."""
    f = math.floor(xo)
    ratio = 1.0 if xo == f else xo - f
    xp = xo + half
    p = math.floor(xp)
    off = -half if xp == p else 1 - half
    return ratio, int64(p) + off - half


@cuda.jit(device=True)
def _n_taps(scale, mode, antialias):
    if mode == MODE_NEAREST:
        return 2  # the reference's 2-wide nearest window; one tap is then selected
    if antialias != 0:
        s = _at_most_one(scale)
        if mode == MODE_LINEAR:
            return 2 - 2 * int64(math.floor(-1.0 / s) + 1.0)
        return 2 - 2 * int64(math.floor(-2.0 / s) + 1.0)
    return 2 if mode == MODE_LINEAR else 4


@cuda.jit(device=True)
def _cubic_w(x, a):
    x = abs(x)
    x2 = x * x
    x3 = x * x2
    if x <= 1.0:
        return _mul(a + 2.0, x3) - _mul(a + 3.0, x2) + 1.0
    if x < 2.0:
        return _mul(a, x3) - _mul(_mul(5.0, a), x2) + _mul(_mul(8.0, a), x) - _mul(4.0, a)
    return 0.0


@cuda.jit(device=True)
def _cubic_outer(a, r):
    return _mul(_mul(_mul(a, r) - _mul(5.0, a), r) + _mul(8.0, a), r) - _mul(4.0, a)


@cuda.jit(device=True)
def _cubic_inner(a, r):
    return _mul(_mul(_mul(a + 2.0, r) - (a + 3.0), r), r) + 1.0


@cuda.jit(device=True)
def _raw_weight(t, n, ratio, mode, antialias, a, s_aa):
    """Tap t's weight before the CPU's normalisations (antialias, exclude_outside)."""
    if antialias != 0:
        u = (1 - n // 2 + t) - ratio
        if mode == MODE_LINEAR:
            return _clamp(1.0 - abs(_mul(u, s_aa)), 0.0, 1.0)
        return _cubic_w(_mul(s_aa, u), a)
    if mode == MODE_LINEAR:
        return 1.0 - ratio if t == 0 else ratio
    if t == 0:
        return _cubic_outer(a, ratio + 1.0)
    if t == 1:
        return _cubic_inner(a, ratio)
    q = 1.0 - ratio
    if t == 2:
        return _cubic_inner(a, q)
    return _cubic_outer(a, q + 1.0)


@cuda.jit(device=True)
def _weight(t, n, ratio, mode, antialias, a, s_aa, tot1, tot2, start, in_len, exclude_outside):
    w = _raw_weight(t, n, ratio, mode, antialias, a, s_aa)
    if antialias != 0:
        w = w / tot1
    if exclude_outside != 0:
        k = start + t
        if k < 0 or k >= in_len:
            w = 0.0
        w = w / tot2
    return w


# --------------------------------------------------------------------------- nearest


@cuda.jit
def _nearest_kernel(xf, outf, in_shape, out_shape, nd, scales, roi, coord_mode, nearest_mode,
                    ev, kind, lo, hi):
    """Per output element: one source index per axis (or extrapolated), then a copy."""
    for i in range(cuda.grid(1), outf.shape[0], cuda.gridsize(1)):
        rem = i
        off = int64(0)
        stride = int64(1)
        bad = False
        for a in range(nd - 1, -1, -1):
            in_len = in_shape[a]
            scale = scales[a]
            rem, j, resized, xo, ext = _axis_position(rem, a, in_shape, out_shape, nd, scales, roi, coord_mode)
            if not resized:
                k = j
            else:
                ratio, start = _window(xo, 1)
                if ratio == 1.0 or nearest_mode == NEAREST_CEIL:
                    pick = 1
                elif nearest_mode == NEAREST_ROUND_PREFER_FLOOR:
                    pick = 1 if ratio > 0.5 else 0
                elif nearest_mode == NEAREST_ROUND_PREFER_CEIL:
                    pick = 1 if ratio >= 0.5 else 0
                elif nearest_mode == NEAREST_FLOOR:
                    pick = 0
                else:  # NEAREST_SIMPLE
                    pick = 1 if scale < 1.0 else 0
                k = _clamp(start + pick, 0, in_len - 1)
                bad = bad or ext
            off += k * stride
            stride *= in_len
        if bad:
            _store(outf, i, ev, kind, lo, hi)
        else:
            outf[i] = xf[off]


# --------------------------------------------------------------------------- linear / cubic


@cuda.jit
def _interp_kernel(xf, outf, in_shape, out_shape, nd, scales, roi, mode, coord_mode, cubic_a,
                   exclude_outside, ev, antialias, kind, lo, hi):
    """Per output element: the CPU's separable passes as nested float64 sums over the taps
    of the resized axes ("levels", ascending axis order, level 0 innermost)."""
    ax = cuda.local.array(MAX_RANK, int64)       # per level: axis, its input length and stride
    lv_len = cuda.local.array(MAX_RANK, int64)
    lv_stride = cuda.local.array(MAX_RANK, int64)
    lv_n = cuda.local.array(MAX_RANK, int64)     # taps, first tap, fractional position
    lv_start = cuda.local.array(MAX_RANK, int64)
    lv_ratio = cuda.local.array(MAX_RANK, float64)
    lv_s = cuda.local.array(MAX_RANK, float64)   # min(scale, 1) for antialias
    lv_tot1 = cuda.local.array(MAX_RANK, float64)
    lv_tot2 = cuda.local.array(MAX_RANK, float64)
    tap = cuda.local.array(MAX_RANK, int64)
    acc = cuda.local.array(MAX_RANK, float64)
    for i in range(cuda.grid(1), outf.shape[0], cuda.gridsize(1)):
        # pass 1, last axis first: identity axes give the base offset; resized axes become
        # levels (filled from the top, then shifted down so level 0 is the first axis)
        rem = i
        base = int64(0)
        stride = int64(1)
        top = MAX_RANK
        first = int64(-1)                         # 1 + the highest extrapolated level, if any
        for a in range(nd - 1, -1, -1):
            in_len = in_shape[a]
            scale = scales[a]
            rem, j, resized, xo, ext = _axis_position(rem, a, in_shape, out_shape, nd, scales, roi, coord_mode)
            if not resized:
                base += j * stride
            else:
                top -= 1
                n = _n_taps(scale, mode, antialias)
                ratio, start = _window(xo, n // 2)
                ax[top] = a
                lv_len[top] = in_len
                lv_stride[top] = stride
                lv_n[top] = n
                lv_start[top] = start
                lv_ratio[top] = ratio
                lv_s[top] = _at_most_one(scale)
                if ext and first < 0:
                    first = top + 1               # the last extrapolated axis wins
            stride *= in_len
        m = MAX_RANK - top
        if m == 0:
            outf[i] = xf[i]
            continue
        first = first - top if first >= 0 else 0
        for q in range(m):                         # shift levels down to 0..m-1
            s = top + q
            ax[q] = ax[s]
            lv_len[q] = lv_len[s]
            lv_stride[q] = lv_stride[s]
            lv_n[q] = lv_n[s]
            lv_start[q] = lv_start[s]
            lv_ratio[q] = lv_ratio[s]
            lv_s[q] = lv_s[s]
        if first == m:                             # the last pass extrapolates
            _store(outf, i, ev, kind, lo, hi)
            continue
        for q in range(first, m):                  # the CPU's weight normalisers, in its order
            n = lv_n[q]
            tot1 = 0.0
            if antialias != 0:
                for t in range(n):
                    tot1 += _raw_weight(t, n, lv_ratio[q], mode, antialias, cubic_a, lv_s[q])
            lv_tot1[q] = tot1
            tot2 = 0.0
            if exclude_outside != 0:
                for t in range(n):
                    tot2 += _weight(t, n, lv_ratio[q], mode, antialias, cubic_a, lv_s[q], tot1, 1.0,
                                    lv_start[q], lv_len[q], exclude_outside)
                if tot2 == 0.0:
                    tot2 = 1.0
            lv_tot2[q] = tot2
            tap[q] = 0
            acc[q] = 0.0
        while True:
            if first > 0:
                v = ev
            else:
                off = base
                for q in range(m):
                    k = _clamp(lv_start[q] + tap[q], 0, lv_len[q] - 1)
                    off += k * lv_stride[q]
                v = float64(xf[off])
            q = first                              # add v to level `first`, carry completed sums up
            while True:
                n = lv_n[q]
                t = tap[q]
                acc[q] += _mul(_weight(t, n, lv_ratio[q], mode, antialias, cubic_a, lv_s[q],
                                       lv_tot1[q], lv_tot2[q], lv_start[q], lv_len[q],
                                       exclude_outside), v)
                tap[q] = t + 1
                if t + 1 < n or q == m - 1:
                    break
                v = acc[q]
                acc[q] = 0.0
                tap[q] = 0
                q += 1
            if tap[m - 1] == lv_n[m - 1]:
                break
        _store(outf, i, acc[m - 1], kind, lo, hi)


# --------------------------------------------------------------------------- launcher


def _padded(shape):
    return tuple(int(d) for d in shape) + (1,) * (MAX_RANK - len(shape))


def _store_args(dtype):
    """(kind, lo, hi) for _store; lo/hi are saturation bounds in the output dtype."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return KIND_BOOL, dt.type(False), dt.type(True)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return KIND_INT, dt.type(info.min), dt.type(info.max)
    return KIND_FLOAT, dt.type(0), dt.type(0)


def resize(x, out, scales, roi, mode, coord_mode, nearest_mode, cubic_a, exclude_outside,
           extrapolation_value, antialias):
    """ONNX Resize of C-contiguous x into out (same dtype); see the CPU module's docstring."""
    nd = len(x.shape)
    if nd < 1:
        raise ValueError("resize: rank-0 input; reshape it to (1,)")
    if nd > MAX_RANK:
        raise ValueError(f"resize: rank {nd} > {MAX_RANK} is not supported on CUDA")
    if len(out.shape) != nd or scales.size != nd:
        raise ValueError("resize: out rank / scales length must equal x.ndim")
    if coord_mode == COORD_TF_CROP_AND_RESIZE and roi.size != 2 * nd:
        raise ValueError("resize: tf_crop_and_resize needs a roi of 2 * rank values")
    if roi.size != 0 and roi.size != 2 * nd:
        raise ValueError("resize: roi must be empty or have 2 * rank values")
    if out.size == 0:
        return
    if x.size == 0:
        raise ValueError("resize: empty input with a non-empty output")
    xf = x.reshape(x.size)
    outf = out.reshape(out.size)
    shapes = (_padded(x.shape), _padded(out.shape), nd, scales, roi)
    kind, lo, hi = _store_args(out.dtype)
    grid = (min((out.size + BLOCK - 1) // BLOCK, GRID), BLOCK)
    if mode == MODE_NEAREST:
        _nearest_kernel[grid](xf, outf, *shapes, int(coord_mode), int(nearest_mode),
                              float(extrapolation_value), kind, lo, hi)
    else:
        _interp_kernel[grid](xf, outf, *shapes, int(mode), int(coord_mode), float(cubic_a),
                             int(exclude_outside), float(extrapolation_value), int(antialias),
                             kind, lo, hi)


# --------------------------------------------------------------------------- AOT signatures


def _sigs(args):
    """Every (data dtype, roi dtype) signature of a kernel; `args` has {t} and {r} slots."""
    return [f"void({args})".format(t=t, r=r) for t in _DTYPES for r in ("float32", "float64")]


_DTYPES = ("float32", "float64", "uint8")
_HEAD = "{t}[::1], {t}[::1], UniTuple(int64, %d), UniTuple(int64, %d), int64, float64[::1], {r}[::1]" % (
    MAX_RANK, MAX_RANK)
NO_FMA = ("_nearest_kernel", "_interp_kernel")   # checked by tests/test_cuda_ptx.py
SIGNATURES = {
    # coord_mode, nearest_mode, ev, kind, lo, hi
    "_nearest_kernel": _sigs(_HEAD + ", int64, int64, float64, int64, {t}, {t}"),
    # mode, coord_mode, cubic_a, exclude_outside, ev, antialias, kind, lo, hi
    "_interp_kernel": _sigs(_HEAD + ", int64, int64, float64, int64, float64, int64, int64, {t}, {t}"),
}
