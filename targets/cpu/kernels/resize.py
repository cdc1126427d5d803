"""Hand-written Numba CPU kernel for ONNX Resize (opsets 10, 11, 13, 18, 19) and Upsample (7, 9).

Numerics follow ``onnx.reference.ops.op_resize`` (the oracle of the official node
conformance data): every non-identity axis is resampled by a separable 1-D pass, in
ascending axis order, with float64 intermediates; the result is cast to the output
dtype at the end (float: plain cast; integer: round-half-to-even, then saturate,
like ``onnx.numpy_helper.saturate_cast``).  Mode ``nearest`` never goes through
float: it selects one source index per output coordinate along every axis and
gathers, so int64 / uint8 / bool data are copied exactly.

Host side (pure Python, shape arithmetic only)
----------------------------------------------
``resize_plan(in_shape, scales=None, sizes=None, roi=None, axes=None,
keep_aspect_ratio_policy="stretch") -> (out_shape, axis_scales)``
    ``out_shape``: tuple of Python ints.  ``axis_scales``: tuple of Python floats,
    one per dim of ``in_shape`` (the scale the coordinate transform uses; with
    sizes it is ``size / in_dim``, or the common min/max scale under
    ``not_larger``/``not_smaller``).  Exactly one of ``scales``/``sizes`` must be
    given (``None`` or empty means absent).  ``roi`` is accepted for signature
    symmetry but does not change the output shape: onnx.reference and ONNX shape
    inference both ignore it (checked: in 10, scale 2, roi 0..0.5 -> 20), although
    the spec text multiplies by ``roi_end - roi_start``.  Negative axes are
    normalised.  Sizes: out = sizes (stretch) or ``int(s * in + 0.5)`` with
    s = min/max of size/in over ``axes`` (not_larger / not_smaller); scales:
    ``out = floor(in * scale)`` in float64.
``expand_roi(rank, roi=None, axes=None) -> tuple`` of ``2 * rank`` floats
    ``[start_0..start_{r-1}, end_0..end_{r-1}]``; default ``0 ... 0, 1 ... 1``.
``resize_codes(mode, coordinate_transformation_mode, nearest_mode) -> (int, int, int)``
    maps attribute strings (str or bytes) to the int codes below.
``upsample_codes(mode) -> (mode, coord_mode, nearest_mode)``: see "Upsample / Resize-10".

Kernel
------
``resize(x, out, scales, roi, mode, coord_mode, nearest_mode, cubic_a,
exclude_outside, extrapolation_value, antialias)`` -> None, writes ``out``.

Caller obligations:
  * ``out`` is preallocated, C-contiguous, ``out.shape == resize_plan(...)[0]``,
    ``out.dtype == x.dtype``.  ``x`` may be any layout (non-contiguous input is
    copied once inside); rank >= 1 (reshape a 0-d tensor to (1,)).
  * ``scales``: float64 array of length ``x.ndim`` (``resize_plan(...)[1]``).
    For scales coming from a float32 tensor pass ``float(np.float32 value)``
    (that is what ``.tolist()`` gives) - do not re-round through decimal.
  * ``roi``: float array of length ``2 * x.ndim`` from ``expand_roi`` (ignored
    unless ``coord_mode == COORD_TF_CROP_AND_RESIZE``, where it is required; may
    be empty for the other modes).  Pass it in the roi tensor's own dtype
    (float32 or float64) to reproduce the reference bit-for-bit: the reference does
    the ``roi_end - roi_start`` and ``roi_start * (len - 1)`` products in the roi
    dtype.  A float16 roi: cast to float32.
  * dtypes: float32 / float64 for all modes; any integer dtype (and bool for
    nearest) also works.  float16 / bfloat16: cast to float32 and back (the
    reference also computes in float64 and casts once).
  * ``antialias`` is ignored for mode nearest (the reference raises; reject it in
    the frontend if you want that behaviour).  It only matters when downscaling.
  * ``cubic_a``, ``extrapolation_value``: Python floats (attribute values);
    ``mode``, ``coord_mode``, ``nearest_mode``, ``exclude_outside``, ``antialias``:
    Python ints (pass ints, not bools, to avoid extra Numba specialisations).
  * An empty output returns immediately; an empty input with a non-empty output
    raises ValueError.

Int codes
---------
mode:        MODE_NEAREST 0, MODE_LINEAR 1, MODE_CUBIC 2
coord_mode:  COORD_HALF_PIXEL 0, COORD_HALF_PIXEL_SYMMETRIC 1,
             COORD_PYTORCH_HALF_PIXEL 2, COORD_ALIGN_CORNERS 3,
             COORD_ASYMMETRIC 4, COORD_TF_CROP_AND_RESIZE 5,
             COORD_TF_HALF_PIXEL_FOR_NN 6 (Resize-11 only: x_original = (x + 0.5) / scale;
             onnx.reference has no implementation of it)
nearest_mode: NEAREST_ROUND_PREFER_FLOOR 0, NEAREST_ROUND_PREFER_CEIL 1,
             NEAREST_FLOOR 2, NEAREST_CEIL 3,
             NEAREST_SIMPLE 4 (not an ONNX value: onnxruntime's opset<11 rule,
             floor when upscaling, ceil when downscaling; see below)

Upsample / Resize-10
--------------------
Upsample-7 (``scales`` attribute), Upsample-9 (``scales`` input) and Resize-10
(inputs ``X, scales``; only attribute ``mode``) have no roi/sizes/coordinate
attributes.  They map onto this kernel as
``resize_plan(x.shape, scales=scales)`` (``out = floor(in * scale)``) and
``resize(x, out, axis_scales, empty_roi, mode, COORD_ASYMMETRIC, NEAREST_FLOOR,
-0.75, 0, 0.0, 0)``: ``x_original = x_resized / scale``, nearest picks
``floor(x_original)``, linear is (multi)linear with edge clamping.  Opset-10 Resize
only has asymmetric coordinates (onnxruntime), recent ONNX version converters set
``nearest_mode='floor'`` when upgrading Resize 10 -> 11, and for integer scales this
equals the ``np.repeat`` of the Upsample reference (onnx.reference implements neither
Resize-10 nor non-integer / linear Upsample).
``upsample_codes(mode)`` returns exactly these codes ("bilinear" is accepted as
linear).  onnxruntime instead rounds non-integer *downscaling* nearest with ceil;
pass ``NEAREST_SIMPLE`` if ORT parity is wanted.

Known deviations from the ONNX spec text (we follow the reference instead)
--------------------------------------------------------------------------
* pytorch_half_pixel with an output length of 1 maps to ``x_original = -0.5`` (spec
  and ORT say 0).  Results only differ for mode cubic.
* align_corners / tf_crop_and_resize / half_pixel_symmetric use the *real*
  ``scale * in_len`` as "length_resized", like the reference.

Other differences from onnx.reference
-------------------------------------
* Passes always run in ascending axis order; the reference uses the order of the
  ``axes`` attribute.  With a non-ascending ``axes`` the float64 sums can differ in
  the last ulp, which after round-half-even can move an integer output by 1 where
  the exact value is k + 0.5 (float outputs: last-ulp only).
* The reference turns FLOAT attributes into np.float32, so it computes cubic
  coefficients in float32; this kernel uses float64 (as the generator of the official
  expected data does).  Float32 outputs then differ by a few float32 ulps.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from .jit import njit

__all__ = [
    "resize",
    "resize_plan",
    "expand_roi",
    "resize_codes",
    "upsample_codes",
    "MODE_NEAREST",
    "MODE_LINEAR",
    "MODE_CUBIC",
    "COORD_HALF_PIXEL",
    "COORD_HALF_PIXEL_SYMMETRIC",
    "COORD_PYTORCH_HALF_PIXEL",
    "COORD_ALIGN_CORNERS",
    "COORD_ASYMMETRIC",
    "COORD_TF_CROP_AND_RESIZE",
    "COORD_TF_HALF_PIXEL_FOR_NN",
    "NEAREST_ROUND_PREFER_FLOOR",
    "NEAREST_ROUND_PREFER_CEIL",
    "NEAREST_FLOOR",
    "NEAREST_CEIL",
    "NEAREST_SIMPLE",
]

MODE_NEAREST = 0
MODE_LINEAR = 1
MODE_CUBIC = 2

COORD_HALF_PIXEL = 0
COORD_HALF_PIXEL_SYMMETRIC = 1
COORD_PYTORCH_HALF_PIXEL = 2
COORD_ALIGN_CORNERS = 3
COORD_ASYMMETRIC = 4
COORD_TF_CROP_AND_RESIZE = 5
COORD_TF_HALF_PIXEL_FOR_NN = 6  # Resize-11 only (removed in opset 13)

NEAREST_ROUND_PREFER_FLOOR = 0
NEAREST_ROUND_PREFER_CEIL = 1
NEAREST_FLOOR = 2
NEAREST_CEIL = 3
NEAREST_SIMPLE = 4

_MODES = {"nearest": MODE_NEAREST, "linear": MODE_LINEAR, "bilinear": MODE_LINEAR,
          "trilinear": MODE_LINEAR, "cubic": MODE_CUBIC}
_COORDS = {
    "half_pixel": COORD_HALF_PIXEL,
    "half_pixel_symmetric": COORD_HALF_PIXEL_SYMMETRIC,
    "pytorch_half_pixel": COORD_PYTORCH_HALF_PIXEL,
    "align_corners": COORD_ALIGN_CORNERS,
    "asymmetric": COORD_ASYMMETRIC,
    "tf_crop_and_resize": COORD_TF_CROP_AND_RESIZE,
    "tf_half_pixel_for_nn": COORD_TF_HALF_PIXEL_FOR_NN,
}
_NEAREST = {
    "round_prefer_floor": NEAREST_ROUND_PREFER_FLOOR,
    "round_prefer_ceil": NEAREST_ROUND_PREFER_CEIL,
    "floor": NEAREST_FLOOR,
    "ceil": NEAREST_CEIL,
    "simple": NEAREST_SIMPLE,
}


# ============================================================================ host side


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def resize_codes(mode="nearest", coordinate_transformation_mode="half_pixel",
                 nearest_mode="round_prefer_floor"):
    """Attribute strings (Resize-11+ defaults) -> (mode, coord_mode, nearest_mode) codes."""
    try:
        return (_MODES[_s(mode)], _COORDS[_s(coordinate_transformation_mode)],
                _NEAREST[_s(nearest_mode)])
    except KeyError as e:
        raise ValueError(f"Resize: unsupported attribute value {e.args[0]!r}") from None


def upsample_codes(mode="nearest"):
    """Codes for Upsample-7/9 and Resize-10: asymmetric coordinates, nearest = floor."""
    m = _MODES.get(_s(mode))
    if m is None or m == MODE_CUBIC:
        raise ValueError(f"Upsample/Resize-10: unsupported mode {mode!r}")
    return m, COORD_ASYMMETRIC, NEAREST_FLOOR


def _absent(v):
    return v is None or len(v) == 0


def _norm_axes(axes, rank):
    if axes is None:
        return list(range(rank))
    out = []
    for a in axes:
        a = int(a)
        if a < -rank or a >= rank:
            raise ValueError(f"Resize: axis {a} out of range for rank {rank}")
        out.append(a + rank if a < 0 else a)
    if len(set(out)) != len(out):
        raise ValueError(f"Resize: duplicate axes {list(axes)}")
    return out


def resize_plan(in_shape, scales=None, sizes=None, roi=None, axes=None,
                keep_aspect_ratio_policy="stretch"):
    """Output shape and per-dim coordinate scales (Python ints / floats), per the spec/reference."""
    del roi  # does not affect the shape (see module docstring)
    in_shape = [int(d) for d in in_shape]
    r = len(in_shape)
    ax = _norm_axes(axes, r)
    policy = _s(keep_aspect_ratio_policy or "stretch")
    has_scales, has_sizes = not _absent(scales), not _absent(sizes)
    if has_scales == has_sizes:
        raise ValueError("Resize: exactly one of 'scales' and 'sizes' must be given")
    if has_sizes:
        sizes = [int(s) for s in sizes]
        if len(sizes) != len(ax):
            raise ValueError(f"Resize: len(sizes)={len(sizes)} != number of axes {len(ax)}")
        full = list(in_shape)
        for i, a in enumerate(ax):
            full[a] = sizes[i]
        fs = [full[i] / in_shape[i] if in_shape[i] else 1.0 for i in range(r)]
        if policy == "stretch":
            return tuple(full), tuple(fs)
        if policy == "not_larger":
            s = min(fs[a] for a in ax)
        elif policy == "not_smaller":
            s = max(fs[a] for a in ax)
        else:
            raise ValueError(f"Resize: invalid keep_aspect_ratio_policy {policy!r}")
        out = tuple(int(s * in_shape[i] + 0.5) if i in ax else in_shape[i] for i in range(r))
        return out, tuple(s if i in ax else 1.0 for i in range(r))
    scales = [float(s) for s in scales]
    if len(scales) != len(ax):
        raise ValueError(f"Resize: len(scales)={len(scales)} != number of axes {len(ax)}")
    fs = [1.0] * r
    for i, a in enumerate(ax):
        if not scales[i] > 0:
            raise ValueError(f"Resize: scales must be positive, got {scales[i]}")
        fs[a] = scales[i]
    return tuple(int(math.floor(fs[i] * in_shape[i])) for i in range(r)), tuple(fs)


def expand_roi(rank, roi=None, axes=None):
    """Full-rank roi ``[starts..., ends...]`` (floats); identity roi when absent."""
    if _absent(roi):
        return tuple([0.0] * rank + [1.0] * rank)
    roi = [float(v) for v in roi]
    if axes is None:
        if len(roi) != 2 * rank:
            raise ValueError(f"Resize: roi must have 2*rank={2 * rank} values, got {len(roi)}")
        return tuple(roi)
    ax = _norm_axes(axes, rank)
    if len(roi) != 2 * len(ax):
        raise ValueError(f"Resize: roi must have 2*len(axes)={2 * len(ax)} values")
    full = [0.0] * rank + [1.0] * rank
    for i, a in enumerate(ax):
        full[a] = roi[i]
        full[rank + a] = roi[len(ax) + i]
    return tuple(full)


# ============================================================================ numba side


def _to_out(v, arr):  # pragma: no cover - replaced by the overload inside njit code
    raise NotImplementedError


@overload(_to_out)
def _ov_to_out(v, arr):
    """float64 value -> element of ``arr``'s dtype (round-half-even + saturate for ints)."""
    dt = arr.dtype
    if isinstance(dt, types.Boolean):
        def impl_b(v, arr):
            return v != 0.0
        return impl_b
    if isinstance(dt, types.Integer):
        nptype = getattr(np, dt.name)
        info = np.iinfo(np.dtype(dt.name))
        lo_f, hi_f = float(info.min), float(info.max)
        lo_i, hi_i = int(info.min), int(info.max)

        def impl_i(v, arr):
            r = np.rint(v)
            if r != r:
                return nptype(0)
            if r <= lo_f:
                return nptype(lo_i)
            if r >= hi_f:
                return nptype(hi_i)
            return nptype(r)
        return impl_i
    if isinstance(dt, types.Float):
        nptype = getattr(np, dt.name)

        def impl_f(v, arr):
            return nptype(v)
        return impl_f
    return None


@njit(cache=True, error_model="numpy")
def _like(v, arr):
    """Cast ``v`` to ``arr``'s dtype (used to do roi arithmetic in the roi dtype)."""
    t = np.empty(1, arr.dtype)
    t[0] = v
    return t[0]


@njit(cache=True, error_model="numpy")
def _is_identity(in_len, out_len, scale, roi, ax, nd):
    """The reference's skip test (math.isclose, rel_tol 1e-9, abs_tol 0)."""
    if out_len != in_len:
        return False
    if not abs(scale - 1.0) <= 1e-9 * max(abs(scale), 1.0):
        return False
    if roi.size > 0:
        r0 = np.float64(roi[ax])
        r1 = np.float64(roi[ax + nd])
        if r0 != 0.0:
            return False
        if not abs(r1 - 1.0) <= 1e-9 * max(abs(r1), 1.0):
            return False
    return True


@njit(cache=True, error_model="numpy")
def _x_original(y, scale, in_len, out_len, coord_mode, roi, ax, nd):
    """Source coordinate of output index ``y`` (float); second value: tf extrapolated."""
    ow = scale * in_len  # the reference's (real-valued) output_width
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
        offset = center * (1.0 - adjustment)
        return offset + (y + 0.5) / scale - 0.5, False
    # COORD_TF_CROP_AND_RESIZE; roi arithmetic in the roi dtype, like the reference
    r0 = roi[ax]
    d = roi[ax + nd] - r0
    n1 = _like(in_len - 1, roi)
    start = np.float64(r0 * n1)
    if ow == 1.0:
        xo = np.float64(d * n1 / _like(2, roi))
    else:
        xo = y * np.float64(d) * (in_len - 1) / (ow - 1.0)
    xo = xo + start
    return xo, (xo < 0.0) or (xo > in_len - 1)


@njit(cache=True, error_model="numpy")
def _cubic_w(x, a):
    x = abs(x)
    x2 = x * x
    x3 = x * x2
    if x <= 1.0:
        return (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
    if x < 2.0:
        return a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
    return 0.0


@njit(cache=True, error_model="numpy")
def _n_taps(scale, mode, antialias):
    if mode == MODE_NEAREST:
        return 2  # the reference's 2-wide nearest window; one tap is then selected
    if antialias != 0:
        s = min(scale, 1.0)
        if mode == MODE_LINEAR:
            return 2 - 2 * int(np.floor(-1.0 / s) + 1.0)
        return 2 - 2 * int(np.floor(-2.0 / s) + 1.0)
    if mode == MODE_LINEAR:
        return 2
    return 4


@njit(cache=True, error_model="numpy")
def _axis_taps(in_len, out_len, scale, roi, ax, nd, mode, coord_mode, nearest_mode,
               cubic_a, exclude_outside, antialias):
    """Per output index along one axis: clamped source indices, weights, extrapolated flag.

    For mode nearest the result has one tap (weight 1); an extrapolated position has
    index -1 there.
    """
    n = _n_taps(scale, mode, antialias)
    nw = 1 if mode == MODE_NEAREST else n
    idx = np.zeros((out_len, nw), np.int64)
    w = np.zeros((out_len, nw), np.float64)
    ext = np.zeros(out_len, np.bool_)
    c = np.empty(n, np.float64)
    half = n // 2
    s_aa = min(scale, 1.0)
    for j in range(out_len):
        xo, ex = _x_original(float(j), scale, in_len, out_len, coord_mode, roi, ax, nd)
        ext[j] = ex
        f = np.floor(xo)
        ratio = 1.0 if xo == f else xo - f
        # window start exactly as the reference's edge-padded neighbour search
        xp = xo + half
        p = np.floor(xp)
        off = -half if xp == p else 1 - half
        start = int(p) + off - half
        if mode == MODE_NEAREST:
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
            k = min(max(start + pick, 0), in_len - 1)
            idx[j, 0] = -1 if ex else k
            w[j, 0] = 1.0
            continue
        if mode == MODE_LINEAR:
            if antialias != 0:
                st = 1 - half
                tot = 0.0
                for t in range(n):
                    v = 1.0 - abs((st + t - ratio) * s_aa)
                    v = min(max(v, 0.0), 1.0)
                    c[t] = v
                    tot += v
                for t in range(n):
                    c[t] = c[t] / tot
            else:
                c[0] = 1.0 - ratio
                c[1] = ratio
        else:
            a = cubic_a
            if antialias != 0:
                st = 1 - half
                tot = 0.0
                for t in range(n):
                    v = _cubic_w(s_aa * (st + t - ratio), a)
                    c[t] = v
                    tot += v
                for t in range(n):
                    c[t] = c[t] / tot
            else:
                r1 = ratio + 1.0
                q = 1.0 - ratio
                q1 = q + 1.0
                c[0] = ((a * r1 - 5.0 * a) * r1 + 8.0 * a) * r1 - 4.0 * a
                c[1] = ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0
                c[2] = ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0
                c[3] = ((a * q1 - 5.0 * a) * q1 + 8.0 * a) * q1 - 4.0 * a
        if exclude_outside != 0:
            tot = 0.0
            for t in range(n):
                k = start + t
                if k < 0 or k >= in_len:
                    c[t] = 0.0
                tot += c[t]
            if tot == 0.0:
                tot = 1.0
            for t in range(n):
                c[t] = c[t] / tot
        for t in range(n):
            idx[j, t] = min(max(start + t, 0), in_len - 1)
            w[j, t] = c[t]
    return idx, w, ext


@njit(cache=True, error_model="numpy")
def _interp_pass(src, dst, outer, in_len, out_len, inner, idx, w, ext, ev):
    """dst[o, j, i] = sum_t w[j, t] * src[o, idx[j, t], i]  (ev where ext[j])."""
    n = idx.shape[1]
    for o in range(outer):
        sb = o * in_len * inner
        db = o * out_len * inner
        for j in range(out_len):
            d0 = db + j * inner
            if ext[j]:
                for i in range(inner):
                    dst[d0 + i] = ev
                continue
            if inner == 1:
                acc = 0.0
                for t in range(n):
                    acc += w[j, t] * np.float64(src[sb + idx[j, t]])
                dst[d0] = acc
                continue
            for i in range(inner):
                dst[d0 + i] = 0.0
            for t in range(n):
                wt = w[j, t]
                s0 = sb + idx[j, t] * inner
                for i in range(inner):
                    dst[d0 + i] += wt * np.float64(src[s0 + i])


@njit(cache=True, error_model="numpy")
def _store(buf, outf):
    for i in range(outf.size):
        outf[i] = _to_out(buf[i], outf)


@njit(cache=True, error_model="numpy")
def _copy(xf, outf):
    for i in range(outf.size):
        outf[i] = xf[i]


@njit(cache=True, error_model="numpy")
def _nearest(xf, outf, in_shape, out_shape, offs, ev):
    """Gather: out[c] = x[sum_a offs[a, c_a]], or ev if any offs[a, c_a] < 0."""
    nd = in_shape.size
    last = out_shape[nd - 1]
    rows = outf.size // last
    evt = _to_out(ev, outf)
    cnt = np.zeros(nd, np.int64)
    for r in range(rows):
        base = 0
        bad = False
        for a in range(nd - 1):
            o = offs[a, cnt[a]]
            if o < 0:
                bad = True
            base += o
        db = r * last
        if bad:
            for j in range(last):
                outf[db + j] = evt
        else:
            for j in range(last):
                o = offs[nd - 1, j]
                if o < 0:
                    outf[db + j] = evt
                else:
                    outf[db + j] = xf[base + o]
        a = nd - 2
        while a >= 0:
            cnt[a] += 1
            if cnt[a] < out_shape[a]:
                break
            cnt[a] = 0
            a -= 1


@njit(cache=True, error_model="numpy")
def _resize_flat(xf, outf, in_shape, out_shape, scales, roi, mode, coord_mode,
                 nearest_mode, cubic_a, exclude_outside, ev, antialias):
    nd = in_shape.size
    if mode == MODE_NEAREST:
        maxo = 1
        for a in range(nd):
            maxo = max(maxo, out_shape[a])
        offs = np.zeros((nd, maxo), np.int64)
        stride = 1
        for a in range(nd - 1, -1, -1):
            if _is_identity(in_shape[a], out_shape[a], scales[a], roi, a, nd):
                for j in range(out_shape[a]):
                    offs[a, j] = j * stride
            else:
                idx, w, ext = _axis_taps(in_shape[a], out_shape[a], scales[a], roi, a, nd,
                                         mode, coord_mode, nearest_mode, cubic_a,
                                         exclude_outside, antialias)
                for j in range(out_shape[a]):
                    offs[a, j] = -1 if idx[j, 0] < 0 else idx[j, 0] * stride
            stride *= in_shape[a]
        _nearest(xf, outf, in_shape, out_shape, offs, ev)
        return

    cur = in_shape.copy()
    buf = np.empty(0, np.float64)
    done = False
    for a in range(nd):
        if _is_identity(in_shape[a], out_shape[a], scales[a], roi, a, nd):
            continue
        idx, w, ext = _axis_taps(in_shape[a], out_shape[a], scales[a], roi, a, nd,
                                 mode, coord_mode, nearest_mode, cubic_a,
                                 exclude_outside, antialias)
        outer = 1
        for b in range(a):
            outer *= cur[b]
        inner = 1
        for b in range(a + 1, nd):
            inner *= cur[b]
        nxt = np.empty(outer * out_shape[a] * inner, np.float64)
        if done:
            _interp_pass(buf, nxt, outer, cur[a], out_shape[a], inner, idx, w, ext, ev)
        else:
            _interp_pass(xf, nxt, outer, cur[a], out_shape[a], inner, idx, w, ext, ev)
        cur[a] = out_shape[a]
        buf = nxt
        done = True
    if done:
        _store(buf, outf)
    else:
        _copy(xf, outf)


@njit(cache=True, error_model="numpy")
def resize(x, out, scales, roi, mode, coord_mode, nearest_mode, cubic_a,
           exclude_outside, extrapolation_value, antialias):
    """ONNX Resize into the preallocated C-contiguous ``out``; see the module docstring."""
    nd = x.ndim
    if nd < 1:
        raise ValueError("resize: rank-0 input; reshape it to (1,)")
    if out.ndim != nd or scales.size != nd:
        raise ValueError("resize: out rank / scales length must equal x.ndim")
    if coord_mode == COORD_TF_CROP_AND_RESIZE and roi.size != 2 * nd:
        raise ValueError("resize: tf_crop_and_resize needs a roi of 2 * rank values")
    if roi.size != 0 and roi.size != 2 * nd:
        raise ValueError("resize: roi must be empty or have 2 * rank values")
    in_shape = np.empty(nd, np.int64)
    out_shape = np.empty(nd, np.int64)
    for a in range(nd):
        in_shape[a] = x.shape[a]
        out_shape[a] = out.shape[a]
    if out.size == 0:
        return
    if x.size == 0:
        raise ValueError("resize: empty input with a non-empty output")
    xf = np.ascontiguousarray(x).reshape(x.size)
    outf = out.reshape(out.size)
    _resize_flat(xf, outf, in_shape, out_shape, scales.astype(np.float64), roi, mode,
                 coord_mode, nearest_mode, float(cubic_a), exclude_outside,
                 float(extrapolation_value), antialias)
