"""Hand-written numba.cuda kernels for ONNX convolution, pooling and LRN.

Mirrors targets/cpu/kernels/nn.py (same launcher names, argument order and numerics):

* Spatial launchers take C-contiguous rank-5 device arrays ``(N, C, D, H, W)``; 1-D and
  2-D problems come as views with leading size-1 spatial dims, and spatial parameters are
  3-tuples of ints.  ``out`` is preallocated by the caller with the dtype of ``x``.
* Conv sums run in the array dtype (the CPU target uses BLAS in that dtype); pooling sums,
  norms and LRN windows run in float64 and are stored in the array dtype.
* Every kernel walks its work with a stride of the grid, so any launch size is correct;
  the launch sizes below are small in the simulator (it costs per simulated thread).
"""
import math

from numba import config, cuda, float64

SIM = bool(config.ENABLE_CUDASIM)
THREADS = 8 if SIM else 256          # 1-D blocks; a power of two (tree reductions)
TILE = 4 if SIM else 16              # implicit-GEMM conv tile: TILE x TILE threads
MAX_BLOCKS = 2 if SIM else 1 << 16
DIRECT_MAX_MG = TILE - 1             # groups with fewer output channels skip the GEMM

_FLOATS = ("float32", "float64")
_A5 = "{t}[:, :, :, :, ::1]"
_I5 = "int64[:, :, :, :, ::1]"
_T3 = "UniTuple(int64, 3)"


def _sigs(*args):
    """Signatures of one kernel for float32 and float64 ('{t}' stands for the dtype)."""
    return [f"void({', '.join(args)})".format(t=t) for t in _FLOATS]


SIGNATURES = {
    "_conv_gemm_kernel": _sigs(_A5, "{t}[:, ::1]", "{t}[::1]", "{t}[:, :, ::1]", _T3, _T3, _T3, _T3, _T3, "int64"),
    "_conv_direct_kernel": _sigs(_A5, _A5, "{t}[::1]", _A5, _T3, _T3, _T3, "int64"),
    "_conv_transpose_kernel": _sigs(_A5, _A5, "{t}[::1]", _A5, _T3, _T3, _T3, "int64"),
    "_max_pool_kernel": _sigs(_A5, _A5, _I5, _T3, _T3, _T3, _T3, "int64", "int64"),
    "_avg_pool_kernel": _sigs(_A5, _A5, _T3, _T3, _T3, _T3, _T3, "int64"),
    "_lp_pool_kernel": _sigs(_A5, _A5, _T3, _T3, _T3, _T3, "float64"),
    "_global_pool_kernel": _sigs("{t}[:, :, ::1]", "{t}[:, ::1]", "int64"),
    "_lrn_kernel": _sigs("{t}[:, :, ::1]", "{t}[:, :, ::1]", "int64", "float64", "float64", "float64"),
}


def _launch_flat(kernel, n, *args):
    """Launch a grid-stride kernel over n independent work items (none: no launch)."""
    if n > 0:
        kernel[min(math.ceil(n / THREADS), MAX_BLOCKS), THREADS](*args)


@cuda.jit(device=True)
def _unravel5(i, shape):
    """Flat row-major index -> (n, c, d, h, w) for a rank-5 shape."""
    w = i % shape[4]
    i //= shape[4]
    h = i % shape[3]
    i //= shape[3]
    d = i % shape[2]
    i //= shape[2]
    return i // shape[1], i % shape[1], d, h, w


@cuda.jit(device=True)
def _taps(o, stride, pad, kernel, dil, size):
    """Window start o*stride - pad along one dim and the taps [lo, hi) of it inside [0, size),
    so the tap loops need no bounds tests (the CPU's _valid_range)."""
    start = o * stride - pad
    lo = 0 if start >= 0 else (dil - 1 - start) // dil
    hi = (size - 1 - start) // dil + 1 if size > start else 0
    if hi > kernel:
        hi = kernel
    if lo > hi:
        lo = hi
    return start, lo, hi


@cuda.jit(device=True)
def _tap_source(o, pad, k, dil, stride, size):
    """ConvTranspose: the input index i with i*stride - pad + k*dil == o, or -1 if none."""
    t = o + pad - k * dil
    if t < 0 or t % stride != 0:
        return -1
    i = t // stride
    return i if i < size else -1


# ----------------------------------------------------------------------------- Conv


@cuda.jit
def _conv_gemm_kernel(x, w2, b, out3, kernel, out_sp, strides, pads_begin, dilations, group):
    """Conv as an implicit GEMM per group: out3[n, g*mg + m, p] = w2[g*mg + m, :] @ col[:, (n, p)] + b.

    The im2col matrix col[(c, kd, kh, kw), (n, od, oh, ow)] is never stored: each K step
    stages a TILE x TILE slab of the weights and gathers the matching slab of col straight
    from x (zero for padding taps) into shared memory.  Images are folded into the GEMM
    columns so small spatial outputs still fill the tiles.  Work item t = (group, row
    tile, column tile), walked with a stride of gridDim.x.
    """
    sa = cuda.shared.array((TILE, TILE), w2.dtype)
    sb = cuda.shared.array((TILE, TILE), x.dtype)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    N, C, D, H, W = x.shape
    kD, kH, kW = kernel
    OD, OH, OW = out_sp
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    cg = C // group
    mg = w2.shape[0] // group
    K = w2.shape[1]
    P = OD * OH * OW
    tm = (mg + TILE - 1) // TILE
    tq = (N * P + TILE - 1) // TILE
    for t in range(cuda.blockIdx.x, group * tm * tq, cuda.gridDim.x):
        g = t // (tm * tq)
        r = t % (tm * tq)
        ml = (r // tq) * TILE + ty          # this thread's output channel within the group
        m = g * mg + ml
        q = (r % tq) * TILE + tx            # this thread's GEMM column: image n, position p
        n = q // P
        p = q % P
        d0 = p // (OH * OW) * sd - pd
        h0 = (p // OW) % OH * sh - ph
        w0 = p % OW * sw - pw
        acc = out3.dtype.type(0)
        for k0 in range(0, K, TILE):
            ka = k0 + tx
            sa[ty, tx] = 0
            if ml < mg and ka < K:
                sa[ty, tx] = w2[m, ka]
            kb = k0 + ty                    # this thread's col row: (c, kd, kh, kw)
            sb[ty, tx] = 0
            if n < N and kb < K:
                i_d = d0 + kb // (kH * kW) % kD * dd
                i_h = h0 + kb // kW % kH * dh
                i_w = w0 + kb % kW * dw
                if 0 <= i_d < D and 0 <= i_h < H and 0 <= i_w < W:
                    sb[ty, tx] = x[n, g * cg + kb // (kD * kH * kW), i_d, i_h, i_w]
            cuda.syncthreads()
            for kk in range(TILE):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        if ml < mg and n < N:
            out3[n, m, p] = acc + b[m]


@cuda.jit
def _conv_direct_kernel(x, w, b, out, strides, pads_begin, dilations, group):
    """Conv with one thread per output element, for groups too narrow to fill a GEMM tile
    (depthwise convs have one output channel per group): no shared memory, no idle rows."""
    N, C, D, H, W = x.shape
    M, cg, kD, kH, kW = w.shape
    dd, dh, dw = dilations
    mg = M // group
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, m, od, oh, ow = _unravel5(o, out.shape)
        d0, d_lo, d_hi = _taps(od, strides[0], pads_begin[0], kD, dd, D)
        h0, h_lo, h_hi = _taps(oh, strides[1], pads_begin[1], kH, dh, H)
        w0, w_lo, w_hi = _taps(ow, strides[2], pads_begin[2], kW, dw, W)
        c0 = m // mg * cg
        acc = out.dtype.type(0)
        for c in range(cg):
            for kd in range(d_lo, d_hi):
                for kh in range(h_lo, h_hi):
                    for kw in range(w_lo, w_hi):
                        acc += x[n, c0 + c, d0 + kd * dd, h0 + kh * dh, w0 + kw * dw] * w[m, c, kd, kh, kw]
        out[n, m, od, oh, ow] = acc + b[m]


def conv(x, w, b, out, strides, pads_begin, dilations, group):
    """ONNX Conv on rank-5 device arrays: implicit GEMM, or the direct kernel for narrow groups."""
    N, M = out.shape[0], out.shape[1]
    mg = M // group
    if mg <= DIRECT_MAX_MG:
        _launch_flat(_conv_direct_kernel, out.size, x, w, b, out, strides, pads_begin, dilations, group)
        return
    P = out.shape[2] * out.shape[3] * out.shape[4]
    tiles = group * math.ceil(mg / TILE) * math.ceil(N * P / TILE)
    if tiles > 0:
        _conv_gemm_kernel[min(tiles, MAX_BLOCKS), (TILE, TILE)](
            x, w.reshape(M, w.size // M), b, out.reshape(N, M, P), tuple(w.shape[2:]),
            tuple(out.shape[2:]), strides, pads_begin, dilations, group)


# -------------------------------------------------------------------- ConvTranspose


@cuda.jit
def _conv_transpose_kernel(x, w, b, out, strides, pads_begin, dilations, group):
    """ConvTranspose in gather form: each output sums the (input, tap) pairs that the
    scatter definition (o = i*stride - pad + k*dil) sends to it, so no atomics are needed."""
    N, C, D, H, W = x.shape
    mg, kD, kH, kW = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    sd, sh, sw = strides
    pd, ph, pw = pads_begin
    dd, dh, dw = dilations
    cg = C // group
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, m, od, oh, ow = _unravel5(o, out.shape)
        c0 = m // mg * cg
        acc = b[m]
        for kd in range(kD):
            i_d = _tap_source(od, pd, kd, dd, sd, D)
            if i_d >= 0:
                for kh in range(kH):
                    i_h = _tap_source(oh, ph, kh, dh, sh, H)
                    if i_h >= 0:
                        for kw in range(kW):
                            i_w = _tap_source(ow, pw, kw, dw, sw, W)
                            if i_w >= 0:
                                for c in range(c0, c0 + cg):
                                    acc += x[n, c, i_d, i_h, i_w] * w[c, m % mg, kd, kh, kw]
        out[n, m, od, oh, ow] = acc


def conv_fused(x, w, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads):
    """The CPU lowering's entry point. This target does not fuse conv epilogues
    (compiler/passes/conv_epilogue.py runs for the CPU only), so only the plain
    conv is valid here; `threads` is a CPU notion and is ignored."""
    if res.size or act:
        raise NotImplementedError("fused conv epilogues are not implemented on cuda")
    conv(x, w, b, out, strides, pads_begin, dilations, group)


def conv_transpose(x, w, b, out, strides, pads_begin, dilations, group):
    """ONNX ConvTranspose on rank-5 device arrays (w is (C, M/group, kD, kH, kW))."""
    _launch_flat(_conv_transpose_kernel, out.size, x, w, b, out, strides, pads_begin, dilations, group)


# ------------------------------------------------------------------------- Pooling


@cuda.jit
def _max_pool_kernel(x, out, indices, kernel, strides, pads_begin, dilations, storage_order, want_idx):
    """One thread per output: the first in-bounds tap in (kd, kh, kw) order, replaced only by
    a strictly greater one (so a NaN never replaces an earlier value), as on the CPU.

    Index = flat position in x, spatial part row-major, or column-major when
    storage_order != 0; an all-padding window yields 0 and index -1.
    """
    N, C, D, H, W = x.shape
    kD, kH, kW = kernel
    dd, dh, dw = dilations
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, c, od, oh, ow = _unravel5(o, out.shape)
        d0, d_lo, d_hi = _taps(od, strides[0], pads_begin[0], kD, dd, D)
        h0, h_lo, h_hi = _taps(oh, strides[1], pads_begin[1], kH, dh, H)
        w0, w_lo, w_hi = _taps(ow, strides[2], pads_begin[2], kW, dw, W)
        best = out.dtype.type(0)
        found = False
        bd = bh = bw = 0
        for i_d in range(d0 + d_lo * dd, d0 + d_hi * dd, dd):
            for i_h in range(h0 + h_lo * dh, h0 + h_hi * dh, dh):
                for i_w in range(w0 + w_lo * dw, w0 + w_hi * dw, dw):
                    v = x[n, c, i_d, i_h, i_w]
                    if not found or v > best:
                        best = v
                        found = True
                        bd, bh, bw = i_d, i_h, i_w
        out[n, c, od, oh, ow] = best
        if want_idx:
            base = (n * C + c) * D * H * W
            if not found:
                idx = -1
            elif storage_order == 0:
                idx = base + (bd * H + bh) * W + bw
            else:
                idx = base + bd + bh * D + bw * D * H
            indices[n, c, od, oh, ow] = idx


def max_pool(x, out, indices, kernel, strides, pads_begin, dilations, storage_order):
    """ONNX MaxPool; ``indices`` is int64 shaped like out, or size 0 when not wanted (as on the CPU)."""
    _launch_flat(_max_pool_kernel, out.size, x, out, indices, kernel, strides, pads_begin, dilations,
                 storage_order, int(indices.size > 0))


@cuda.jit(device=True)
def _window_sum(x, n, c, od, oh, ow, kernel, strides, pads_begin, dilations, p):
    """Float64 sum of x (p == 0) or |x|**p over the in-bounds taps of one pooling window,
    and the number of those taps."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    dd, dh, dw = dilations
    d0, d_lo, d_hi = _taps(od, strides[0], pads_begin[0], kernel[0], dd, D)
    h0, h_lo, h_hi = _taps(oh, strides[1], pads_begin[1], kernel[1], dh, H)
    w0, w_lo, w_hi = _taps(ow, strides[2], pads_begin[2], kernel[2], dw, W)
    acc = 0.0
    for i_d in range(d0 + d_lo * dd, d0 + d_hi * dd, dd):
        for i_h in range(h0 + h_lo * dh, h0 + h_hi * dh, dh):
            for i_w in range(w0 + w_lo * dw, w0 + w_hi * dw, dw):
                v = float(x[n, c, i_d, i_h, i_w])
                if p == 0.0:
                    acc += v
                elif p == 2.0:
                    acc += v * v
                elif p == 1.0:
                    acc += abs(v)
                else:
                    acc += abs(v) ** p
    return acc, (d_hi - d_lo) * (h_hi - h_lo) * (w_hi - w_lo)


@cuda.jit
def _avg_pool_kernel(x, out, kernel, strides, pads_begin, pads_end, dilations, count_include_pad):
    """One thread per output: float64 window sum over the number of in-bounds taps, or with
    count_include_pad of taps inside the padded extent [0, L + pads_begin + pads_end)
    (so taps beyond pads_end, possible with ceil_mode, never count)."""
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, c, od, oh, ow = _unravel5(o, out.shape)
        acc, count = _window_sum(x, n, c, od, oh, ow, kernel, strides, pads_begin, dilations, 0.0)
        if count_include_pad:
            count = 1
            for a in range(3):
                size = x.shape[2 + a] + pads_begin[a] + pads_end[a]
                _, lo, hi = _taps((od, oh, ow)[a], strides[a], 0, kernel[a], dilations[a], size)
                count *= hi - lo
        out[n, c, od, oh, ow] = acc / count if count > 0 else math.nan


def avg_pool(x, out, kernel, strides, pads_begin, pads_end, dilations, count_include_pad):
    """ONNX AveragePool on rank-5 device arrays."""
    _launch_flat(_avg_pool_kernel, out.size, x, out, kernel, strides, pads_begin, pads_end, dilations,
                 int(count_include_pad))


@cuda.jit
def _lp_pool_kernel(x, out, kernel, strides, pads_begin, dilations, p):
    """One thread per output: (float64 sum of |x|^p over in-bounds taps)^(1/p)."""
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, c, od, oh, ow = _unravel5(o, out.shape)
        acc, _ = _window_sum(x, n, c, od, oh, ow, kernel, strides, pads_begin, dilations, p)
        if p == 2.0:
            out[n, c, od, oh, ow] = math.sqrt(acc)
        elif p == 1.0:
            out[n, c, od, oh, ow] = acc
        else:
            out[n, c, od, oh, ow] = acc ** (1.0 / p)


def lp_pool(x, out, kernel, strides, pads_begin, dilations, p):
    """ONNX LpPool on rank-5 device arrays; padding contributes 0."""
    _launch_flat(_lp_pool_kernel, out.size, x, out, kernel, strides, pads_begin, dilations, float(p))


@cuda.jit(device=True)
def _max_nan(a, b):
    """max that propagates NaN from either side (like np.max)."""
    return a if a > b or a != a else b


@cuda.jit
def _global_pool_kernel(x, out, is_max):
    """One block per (n, c) row (rows strided by gridDim.x): threads stride over the row in
    float64, then a shared-memory tree reduction; blockDim.x must be THREADS."""
    part = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    N, C, S = x.shape
    for row in range(cuda.blockIdx.x, N * C, cuda.gridDim.x):
        n = row // C
        c = row % C
        acc = -math.inf if is_max else 0.0
        for s in range(tid, S, THREADS):
            v = float(x[n, c, s])
            acc = _max_nan(acc, v) if is_max else acc + v
        part[tid] = acc
        cuda.syncthreads()
        width = THREADS // 2
        while width > 0:
            if tid < width:
                a = part[tid]
                part[tid] = _max_nan(a, part[tid + width]) if is_max else a + part[tid + width]
            cuda.syncthreads()
            width //= 2
        if tid == 0:
            out[n, c] = part[0] if is_max else part[0] / S
        cuda.syncthreads()              # part is reused for the next row


def global_pool(x, out, is_max):
    """GlobalMaxPool (NaN propagates) or GlobalAveragePool of x (N, C, S) into out (N, C)."""
    rows = out.shape[0] * out.shape[1]
    if rows > 0:
        _global_pool_kernel[min(rows, MAX_BLOCKS), THREADS](x, out, int(bool(is_max)))


# ------------------------------------------------------------------- Normalization


@cuda.jit
def _lrn_kernel(x, out, size, alpha, beta, bias):
    """One thread per element of x (N, C, S): float64 sum of squares over the channel window."""
    N, C, S = x.shape
    lo_off = (size - 1) // 2
    hi_off = size - 1 - lo_off
    scale = alpha / size
    for o in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = o % S
        c = o // S % C
        n = o // (S * C)
        lo = c - lo_off if c >= lo_off else 0      # (no min/max: their overloads fail to
        hi = c + hi_off + 1 if c + hi_off < C else C  # compile ahead of time in numba 0.68)
        sq = 0.0
        for cc in range(lo, hi):
            v = float(x[n, cc, s])
            sq += v * v
        out[n, c, s] = x[n, c, s] / (bias + scale * sq) ** beta


def lrn(x, out, size, alpha, beta, bias):
    """ONNX LRN over the channels of x (N, C, S): y = x / (bias + alpha/size * sum x^2)^beta."""
    _launch_flat(_lrn_kernel, x.size, x, out, int(size), float(alpha), float(beta), float(bias))
