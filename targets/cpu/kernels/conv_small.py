"""float32 2-D convolutions of small output images (7x7, 14x14) as tiles of one output row's
positions by two vectors of output channels (32 with AVX-512, 16 with AVX2): vectors run along
the channels, so no lane is wasted on a ragged image width.

Why: the NCHW GEMM (nn.conv_gemm32) puts the output positions in its 32-column tiles; 49
positions fill two tiles to 77% and its 640x160x49 pointwise conv ran at 68 GFLOPS where
onnxruntime's NCHWc kernels ran 103 (mobilenetv2_half's 7x7 and 14x14 convs: ~0.3 ms of
its 1-thread gap). Here a tile is mr <= 8 positions of one output row (7 for a 7-wide image:
no waste; with AVX-512 14 of a stride-1 row a multiple of 14 wide, WIDE) by 32 channels of
filters packed at compile time (pack), 16 accumulators (28 for WIDE); each step of the
reduction broadcasts one input value a position (read in place from the image, or from a
zero-padded copy where the conv pads) and loads two filter vectors. The
finished tile is transposed in registers (three rounds of two-vector shuffles) into rows of
8 positions a channel, stored under a mask with bias, residual and Relu/Clip/HardSwish/SiLU
applied on the way. The NCHW output needs no layout change around it.

Called by symbol (SYMBOL), like window3x3.py: a C callback compiled once."""
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import callback, njit
from .nn import pack_panels, vec_epilogue_silu
from .share import CHANNEL_SPLIT_MAX, chunk_count, counters, next_chunk
from .sgemm import W as VW
from .vecir import EPI_CLAMP, EPI_HARDSWISH, EPI_SILU, Vec, dispatch, store_tile

PANEL = 2 * VW      # output channels a tile (two vectors); a last panel of one vector where M % PANEL == VW
# Positions a tile: with AVX-512's 32 registers 8 (7 where a row splits so: 7- and 14-wide
# images), 16 accumulators. With AVX2's 16, 6, 5 or 4 (12 accumulators at most, a register
# for the broadcast input, two for the filter vectors; 7 rows spilled an accumulator every
# reduction step, its store-to-load forwarding then on the FMA chain: 1.45x slower). A row of
# 7 takes two tiles of 4, one of 14 three of 5.
MR_VARIANTS = (8, 7) if VW == 16 else (6, 5, 4)
MR_MAX = MR_VARIANTS[0]
# With AVX-512, a stride-1 row a multiple of 14 wide (14x14 .. 112x112 images) takes tiles of
# 14 positions, 28 accumulators: a filter vector loaded for 14 FMAs, not 7 (or 8). In C, the
# weights streaming from L2 (K = 2304), 200 GFLOPS against 175 for 7 positions on the session-24
# Xeon (peak 214). Here, one thread, us (7 or 8 -> 14): 64 -> 64 at 28x28 364-398 -> 338,
# 32 -> 32 at 56x56 360-390 -> 357-365, 128 -> 128 at 14x14 335-337 -> 327-345; resnet18_half
# against onnxruntime, alternating processes, 1.204 / 1.179 -> 1.156 / 1.132. Its cost: the
# callback's cold compile 2.3 -> 4.5 s there.
WIDE = 14 if VW == 16 else 0
TILE_VARIANTS = ((WIDE,) if WIDE else ()) + MR_VARIANTS     # the loop nests _rows compiles
GROUP = 8       # positions a transpose stores (vecir.store_tile)


def pack(w: np.ndarray) -> np.ndarray:
    """Filters (M, C, 1, kh, kw) in the kernel's layout, flat float32 (compile time): panels of
    PANEL output channels (the last of VW where M % PANEL == VW), each K = C*kh*kw rows of its
    channels, reduction index k = (c, i, j) as the filter's own order."""
    return pack_panels(w, PANEL)


@njit(cache=True, error_model="numpy")
def scale_panels(wp, s, M, taps):
    """pack's filters with input channel c's rows (reduction steps k with k // taps == c) times
    s[c]: the conv of x * s (s one float a channel) as the conv of x (conv_input_scale.py)."""
    K = s.size * taps
    if wp.size != M * K:
        raise ValueError("scale_panels: filters and scale do not agree")
    out = np.empty_like(wp)
    off = 0
    for m0 in range(0, M, PANEL):
        width = min(PANEL, M - m0)
        w2 = wp[off:off + K * width].reshape(K, width)
        o2 = out[off:off + K * width].reshape(K, width)
        for k in range(K):        # indices from 0: no negative-index checks, so it vectorises
            f = s[k // taps]
            for j in range(width):
                o2[k, j] = w2[k, j] * f
        off += K * width
    return out


@intrinsic
def _rows(typingctx, xp, xs, rs, s, offs, K, wp, M, bp, op, OH, OW, rp, t0, t1, rows_first, epi, lo, hi, mr, OWr):
    """Output rows t0 .. t1, counted over (image, panel, row), or (image, row, panel) where
    rows_first is not 0, of out (N, M, OH, OW) at op, in tiles of mr positions (tiling); a row
    of OW positions holds several of the image's rows of OWr (OW == OWr: one):
    epilogue(sum_k x[image base + row base + offs[k] + position * s] * w[k, m] + b[m] [+ res]).
    xp: the (padded) input, xs floats an image, rs floats from one output row's inputs to the
    next (s input rows); offs[k] the offset of reduction step k (int64, K of them); wp pack's
    filters; rp the residual (0: none); epi an EPI_* code with clamp bounds lo, hi."""
    sig = types.void(*(types.intp,) * 17, types.float32, types.float32, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        xp_i, xs, rs, s, offs_i, K, wp_i, M, bp_i, op_i, OH, OW, rp_i, t0, t1, rows_first, epi, lo, hi, mr, OWr = args
        V = Vec(builder, VW, K.type)
        H8 = Vec(builder, 8, K.type)
        const, c0 = V.const, V.const(0)
        i64p = ir.IntType(64).as_pointer()
        x_base, w_base, b_base, o_base, r_base = (V.fptr(a) for a in (xp_i, wp_i, bp_i, op_i, rp_i))
        offs = builder.inttoptr(offs_i, i64p)
        accs = [[cgutils.alloca_once(builder, V.vec) for _ in range(2)] for _ in range(max(MR_MAX, WIDE))]
        panels = builder.sdiv(builder.add(M, const(PANEL - 1)), const(PANEL))
        tiles = builder.sdiv(builder.add(OW, builder.sub(mr, const(1))), mr)

        def tile(MR, NV, img, m0, oh, ow0, with_res, ep):
            """One tile: MR rows of code (positions past the tile's own count clamped to the
            image's last, computed and not stored), NV vectors of channels; MR == WIDE: 14
            positions of a stride-1 row, all in the image (tiling)."""
            count = builder.sub(OW, ow0)
            count = builder.select(builder.icmp_signed("<", mr, count), mr, count)
            row_base = builder.gep(x_base, [builder.add(builder.mul(img, xs), builder.mul(oh, rs))])
            at = wide_positions(row_base, ow0) if MR == WIDE else narrow_positions(MR, row_base, ow0)
            reduce(MR, NV, m0, at)
            store(MR, NV, img, m0, oh, ow0, count, with_res, ep)

        def reduce(MR, NV, m0, at):
            """accs[r][v] = sum over k of the input at at(r, offs[k]) * w[k, v-th vector of the panel]."""
            for r in range(MR):
                for v in range(NV):
                    builder.store(V.zero, accs[r][v])
            panel = builder.gep(w_base, [builder.mul(m0, K)])
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                off = builder.load(builder.gep(offs, [k]))
                wrow = builder.gep(panel, [builder.mul(k, const(NV * VW))])
                wv = [V.load(wrow, const(v * VW)) for v in range(NV)]
                for r in range(MR):
                    a = V.splat(builder.load(at(r, off)))
                    for v in range(NV):
                        builder.store(V.fma(a, wv[v], builder.load(accs[r][v])), accs[r][v])

        def wide_positions(row_base, ow0):
            """Where position r of a WIDE tile reads at reduction offset off: one pointer and
            constant steps (with a pointer a position, as narrow_positions, 14 of them spilled and
            the tile ran 2x slower)."""
            base = builder.gep(row_base, [ow0])
            return lambda r, off: builder.gep(base, [builder.add(off, const(r))])

        def narrow_positions(MR, row_base, ow0):
            """Where position r of a narrow tile reads at reduction offset off: a pointer a position.
            Position p of the row is (p // OWr, p % OWr) of the image: one division a tile, the
            tile's later positions step on from it (OWr >= 7 > MR - 1: one wrap at most)."""
            q0, c0 = builder.sdiv(ow0, OWr), builder.srem(ow0, OWr)
            last = builder.sub(OW, const(1))
            ptrs = []
            for r in range(MR):
                pos = builder.add(ow0, const(r))
                clamp = builder.icmp_signed(">", pos, last)
                col = builder.add(c0, const(r))
                wrap = builder.icmp_signed(">=", col, OWr)
                col = builder.select(wrap, builder.sub(col, OWr), col)
                q = builder.add(q0, builder.zext(wrap, q0.type))
                # the clamped position (the image's last) is row OW // OWr - 1, column OWr - 1
                q = builder.select(clamp, builder.sub(builder.sdiv(OW, OWr), const(1)), q)
                col = builder.select(clamp, builder.sub(OWr, const(1)), col)
                at = builder.add(builder.mul(q, rs), builder.mul(col, s))
                ptrs.append(builder.gep(row_base, [at]))
            return lambda r, off: builder.gep(ptrs[r], [off])

        def store(MR, NV, img, m0, oh, ow0, count, with_res, ep):
            """The tile's accumulators, in groups of 8 positions, through the epilogue to out."""
            plane = builder.mul(OH, OW)
            for g0 in range(0, MR, GROUP):
                mask = H8.below(builder.sub(count, const(g0)))
                for v in range(NV):
                    ch0 = builder.add(m0, const(v * VW))
                    rows = [builder.load(accs[r][v]) for r in range(g0, min(MR, g0 + GROUP))]
                    rows += [V.zero] * (GROUP - len(rows))

                    def at_of(c, ch0=ch0, g0=g0):
                        return builder.add(builder.mul(builder.add(builder.mul(img, M), builder.add(ch0, const(c))), plane),
                                           builder.add(builder.mul(oh, OW), builder.add(ow0, const(g0))))
                    store_tile(V, H8, rows, V.load(b_base, ch0), at_of, mask, o_base, r_base, with_res, ep, lo, hi)

        by_rows = builder.icmp_signed("!=", rows_first, c0)

        def panel_row(t):
            """(first channel, output row) of work item t (in its image)."""
            m0 = builder.select(by_rows, builder.srem(t, panels), builder.srem(builder.sdiv(t, OH), panels))
            oh = builder.select(by_rows, builder.srem(builder.sdiv(t, panels), OH), builder.srem(t, OH))
            return builder.mul(m0, const(PANEL)), oh

        def body(MR, NV, with_res, ep):
            """Every tile of one output row (the work item t)."""
            def run(t):
                img = builder.sdiv(t, builder.mul(panels, OH))
                m0, oh = panel_row(t)
                with cgutils.for_range(builder, tiles) as tl:
                    tile(MR, NV, img, m0, oh, builder.mul(tl.index, mr), with_res, ep)
            return run

        def per_item(t):
            m0 = panel_row(t)[0]
            full = builder.icmp_signed("<=", builder.add(m0, const(PANEL)), M)
            has_res = builder.icmp_signed("!=", rp_i, c0)
            # no activation is a clamp to (-inf, inf) (vec_epilogue's bounds): one variant fewer to compile
            eps = [(builder.icmp_signed("==", epi, const(e)), e) for e in (EPI_HARDSWISH, EPI_SILU)] + [(None, EPI_CLAMP)]
            dispatch(builder, [(builder.icmp_signed("==", mr, const(r)), r) for r in TILE_VARIANTS], lambda MR: dispatch(
                builder, [(full, 2), (None, 1)], lambda NV: dispatch(
                    builder, [(has_res, True), (None, False)], lambda rs_: dispatch(
                        builder, eps, lambda ep: body(MR, NV, rs_, ep)(t)))))

        with cgutils.for_range_slice(builder, t0, t1, const(1), inc=True) as (t, _):
            per_item(t)
        return context.get_dummy_value()

    return sig, codegen


_I = types.intp
# (x, floats an image, floats a row step, stride, offs, K, packed filters, M, bias, out, OH, OW,
# res (0: none), items t0 .. t1, rows first, EPI_* code) as integers and addresses, then lo, hi,
# positions a tile and the image's row width (tiling)
SIGNATURE = types.int64(*(_I,) * 17, types.float32, types.float32, _I, _I)
SYMBOL = "onnxjit_conv_small_v3"


@callback(SYMBOL, SIGNATURE, error_model="numpy")
def rows_callback(xp, xs, rs, s, offs, K, wp, M, bp, op, OH, OW, rp, t0, t1, rows_first, epi, lo, hi, mr, OWr):
    """_rows as a C callback."""
    _rows(xp, xs, rs, s, offs, K, wp, M, bp, op, OH, OW, rp, t0, t1, rows_first, epi, lo, hi, mr, OWr)
    return 0


_call = types.ExternalFunction(SYMBOL, SIGNATURE)


@njit(cache=True, error_model="numpy")
def _setup(x, wp, b, out, strides, pads_begin, kernel, res):
    """(the input as the kernel reads it, floats an image, floats a row step, offs, b, res, the
    padded geometry (Hq, Wq, pt, pl), or Hq == 0 where x is read in place): x itself where no
    window leaves it, else room for a zero-padded copy holding every window, which _pad fills;
    the operands checked (and b, res copied where they are not contiguous)."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    M, OH, OW = out.shape[1], out.shape[3], out.shape[4]
    kh, kw, s = kernel[0], kernel[1], strides[1]
    K = C * kh * kw
    if (x.itemsize != 4 or wp.itemsize != 4 or b.itemsize != 4 or out.itemsize != 4 or res.itemsize != 4
            or wp.size != M * K or b.size != M or M % VW != 0 or out.shape[0] != N or strides[2] != s
            or not out.flags.c_contiguous or (res.size > 0 and res.shape != out.shape)):
        raise ValueError("conv_small: operands do not agree")
    pt, pl = pads_begin[1], pads_begin[2]
    Hq, Wq = max(H + pt, (OH - 1) * s + kh), max(W + pl, (OW - 1) * s + kw)
    xc = np.ascontiguousarray(x).reshape(-1)
    in_place = pt == 0 and pl == 0 and Hq == H and Wq == W
    xq = xc if in_place else np.empty(N * C * Hq * Wq, np.float32)
    offs = np.empty(K, np.int64)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                offs[(c * kh + i) * kw + j] = (c * Hq + i) * Wq + j
    geo = np.array([0 if in_place else Hq, Wq, pt, pl], np.int64)
    return xc, xq, C * Hq * Wq, s * Wq, offs, np.ascontiguousarray(b), np.ascontiguousarray(res), geo


@intrinsic
def _pad_planes(typingctx, xp, qp, H, W, Hq, Wq, pt, pl, p0, p1):
    """Planes p0 .. p1 of x (at xp, planes H x W) into the zero-padded planes (Hq x Wq, x's first
    row and column at (pt, pl)) at qp: each padded row in vectors, a masked load (lanes outside
    x read as zeros) and a masked store."""
    sig = types.void(*(types.intp,) * 10)

    def codegen(context, builder, signature, args):
        xp_i, qp_i, H, W, Hq, Wq, pt, pl, p0, p1 = args
        V = Vec(builder, VW, H.type)
        const = V.const
        x_base, q_base = V.fptr(xp_i), V.fptr(qp_i)
        blocks = builder.sdiv(builder.add(Wq, const(VW - 1)), const(VW))
        with cgutils.for_range_slice(builder, p0, p1, const(1), inc=True) as (p, _):
            with cgutils.for_range(builder, Hq) as rows:
                i = builder.sub(rows.index, pt)
                inside = builder.and_(builder.icmp_signed(">=", i, const(0)), builder.icmp_signed("<", i, H))
                i_safe = builder.select(inside, i, const(0))
                src = builder.gep(x_base, [builder.add(builder.mul(p, builder.mul(H, W)), builder.mul(i_safe, W))])
                dst = builder.gep(q_base, [builder.mul(builder.add(builder.mul(p, Hq), rows.index), Wq)])
                with cgutils.for_range(builder, blocks) as cols:
                    c = builder.mul(cols.index, const(VW))
                    col = builder.sub(c, pl)
                    m_in = builder.and_(V.inside(col, W), V.splat(inside))
                    V.store(V.load(src, col, m_in), dst, c, V.below(builder.sub(Wq, c)))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, error_model="numpy")
def _pad(xc, xq, H, W, geo, p0, p1):
    """Planes p0 .. p1 (over images and channels) of x (flat, planes H x W) into xq's zero-padded
    planes (geo: Hq, Wq, pt, pl); nothing where geo says x is read in place. In vectors
    (_pad_planes): Numba's 4-D slice copy took 9-15 us for 256 planes of 7x7 or 128 of 14x14
    (a tenth of those convs' arithmetic at 2 threads), and its scalar loops more."""
    if geo[0] != 0:
        _pad_planes(xc.ctypes.data, xq.ctypes.data, H, W, geo[0], geo[1], geo[2], geo[3], p0, p1)


@njit(cache=True, error_model="numpy")
def _run(xq, xs, rs, offs, wp, b, out, s, res, t0, t1, rows_first, act, alpha, beta):
    epi, lo, hi = vec_epilogue_silu(act, alpha, beta)
    mr, flat = tiling(out.shape[3], out.shape[4], s)
    OH, OW = (1, out.shape[3] * out.shape[4]) if flat else (out.shape[3], out.shape[4])
    _call(xq.ctypes.data, xs, rs, s, offs.ctypes.data, offs.size, wp.ctypes.data, out.shape[1], b.ctypes.data,
          out.ctypes.data, OH, OW, res.ctypes.data if res.size > 0 else 0, t0, t1, rows_first,
          epi, lo, hi, mr, out.shape[4])
    return xq.size + offs.size + wp.size + b.size + res.size     # alive through the call


# Planes of at most this many positions may take tiles across their rows (tiling).
FLAT_MAX = 64


@njit(cache=True, error_model="numpy", callbacks=False)
def tiling(OH, OW, s=1):
    """(positions a tile, whether tiles run on across the image's rows). A stride-1 row a
    multiple of WIDE wide takes tiles of WIDE. Otherwise a row takes tiles of
    ceil(OW / tiles) positions, the fewest tiles of at most MR_MAX. A small image (FLAT_MAX)
    whose rows would leave positions computed and not stored takes its positions as one row
    where that wastes fewer: on AVX2 a 7x7 image is 14 tiles of 4 (56 positions), or 10 of 5
    across its rows (50)."""
    if WIDE and s == 1 and OW % WIDE == 0:
        return WIDE, False
    tiles = (OW + MR_MAX - 1) // MR_MAX
    mr = (OW + tiles - 1) // tiles
    P = OH * OW
    if OH == 1 or P > FLAT_MAX:
        return mr, False
    row_cost = OH * tiles * mr        # positions computed, stored or not
    best, best_mr = row_cost, mr
    for r in MR_VARIANTS:
        cost = (P + r - 1) // r * r
        if cost < best:
            best, best_mr = cost, r
    return best_mr, best < row_cost


@njit(cache=True, error_model="numpy", callbacks=False)
def items(out_shape):
    """Work items (output rows, or whole images where tiling says so, over images and channel
    panels)."""
    rows = 1 if tiling(out_shape[3], out_shape[4])[1] else out_shape[3]
    return out_shape[0] * ((out_shape[1] + PANEL - 1) // PANEL) * rows


@njit(cache=True, error_model="numpy")
def conv(x, wp, b, out, strides, pads_begin, kernel, res, act, alpha, beta):
    """out = act(conv(x, w) + b [+ res]) for x (N, C, 1, H, W), out (N, M, 1, OH, OW) float32,
    w packed by pack, kernel (kh, kw), act one of nn's ACT_NONE, RELU, CLIP, HARDSWISH, SILU
    (lower_nn._conv_small says which convs: 2-D, group 1, dilation 1, M % VW == 0)."""
    xc, xq, xs, rs, offs, b, res, geo = _setup(x, wp, b, out, strides, pads_begin, kernel, res)
    _pad(xc, xq, x.shape[3], x.shape[4], geo, 0, x.shape[0] * x.shape[1])
    _run(xq, xs, rs, offs, wp, b, out, strides[1], res, 0, items(out.shape), 0, act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_par(x, wp, b, out, strides, pads_begin, kernel, res, act, alpha, beta, parts, rows_first):
    """conv with its work items in `parts` ranges, one a thread (the padded copy made first, its
    planes split the same way): ranges of output rows where rows_first (rows_first below), else
    of channel panels."""
    xc, xq, xs, rs, offs, b, res, geo = _setup(x, wp, b, out, strides, pads_begin, kernel, res)
    P = x.shape[0] * x.shape[1]
    for p in prange(parts):
        _pad(xc, xq, x.shape[3], x.shape[4], geo, p * P // parts, (p + 1) * P // parts)
    T = items(out.shape)
    chunks = chunk_count(parts, T)
    nxt = counters(parts, chunks)
    for p in prange(parts):       # each thread its own ranges first, then what another has not started (share.py)
        c = next_chunk(nxt, p, parts, chunks)
        while c >= 0:
            _run(xq, xs, rs, offs, wp, b, out, strides[1], res, c * T // chunks, (c + 1) * T // chunks, rows_first,
                 act, alpha, beta)
            c = next_chunk(nxt, p, parts, chunks)


# conv_par splits convs with filters up to this size by output rows, larger ones by channel
# panels. At 2 threads, interleaved in one process: mobilenetv2_half (all its filters below)
# 1.881 -> 1.841 ms and 1.891 -> 1.827 against panels everywhere, se_cnn 0.528 -> 0.518;
# resnet18_half even, and 3% slower with its 256 x 256 x 3 x 3 filters split by rows too.
ROWS_FIRST_MAX_BYTES = 512 * 1024
# Small planes (share.CHANNEL_SPLIT_MAX) split by panels whatever their filters; on the
# session-24 Xeon the depthwise conv after each ran as fast or faster (20.3 -> 17.8 us at 14x14).


def rows_first(w_shape, out_shape) -> int:
    """Whether conv_par splits a conv with filters of this shape by output rows: where the filters
    are small, so that a thread reads the rows of its input and writes the rows of its output
    that the layers around it (split by rows too) leave in its own core's cache; larger filters
    by channel panels, each thread streaming half of them. Small planes by panels (above)."""
    plane = int(np.prod(out_shape[2:]))
    return int(4 * int(np.prod(w_shape)) <= ROWS_FIRST_MAX_BYTES and plane > CHANNEL_SPLIT_MAX)
