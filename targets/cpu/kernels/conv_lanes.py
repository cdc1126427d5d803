"""float32 2-D convolutions with few multiply-adds an output (stems: 3 input channels, 3x3
stride 2) as tiles of 16 positions of one output row (the vector lanes) by 16 output channels
(8 where the conv has 8: the bundled small CNN's stem); with AVX2, 8 positions by 8 channels.

Why: a stem has 27 multiply-adds an output. conv_small's tiles (channels in the lanes) spend
more on their transpose than on that arithmetic, and the GEMM (nn.conv_gemm32) gathers a
stride-2 im2col and splits its 16 channels in two bands: mobilenetv2_half's 3 -> 16 stem at
224x224 ran 158 us at one thread and 123 at two (onnxruntime's per-node profile at one thread:
122-146, with its few us of profiling a node). Here
each reduction step loads 16 input positions once (a stride-2 row: two loads and one
shuffle of the even lanes) and multiplies them into 16 accumulators, one an output channel,
by filters broadcast from a packed panel; the padding is masked loads at the image's border
(interior tiles load unmasked) and kernel rows outside the image are skipped, so no padded
copy of the image is made. The tile is already an NCHW row segment of each channel: stored
under a mask with bias, residual and Relu/Clip/HardSwish/SiLU applied on the way.

Called by symbol (SYMBOL), like conv_small.py: a C callback compiled once."""
import numpy as np
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import callback, njit
from .nn import pack_panels, vec_epilogue_silu
from .sgemm import W as VW
from .vecir import EPI_CLAMP, EPI_HARDSWISH, EPI_SILU, Vec, dispatch

# Output channels a tile (one accumulator each); half as many where M is no multiple. With
# AVX2's 16 registers 8: 16 accumulators left none for the input vector and the broadcast.
PANEL = 16 if VW == 16 else 8
HALF = PANEL // 2 if VW == 16 else PANEL    # the narrower panel (AVX-512 only)


@njit(cache=True, error_model="numpy", callbacks=False)
def panel_width(M):
    """Output channels a tile: PANEL, or HALF where M is not a multiple (lower_nn takes M = 8 only)."""
    return PANEL if M % PANEL == 0 else HALF


def pack(w: np.ndarray) -> np.ndarray:
    """Filters (M, C, 1, kh, kw) as panels of panel_width(M) output channels, each K = C*kh*kw rows
    of its channels' weights (k = (c, i, j), the filter's own order), flat float32 (compile time)."""
    return pack_panels(w, panel_width(w.shape[0]))


@intrinsic
def _rows(typingctx, xp, C, H, W, s, pt, pl, kh, kw, wp, M, bp, op, OH, OW, rp, t0, t1, epi, lo, hi):
    """Output rows t0 .. t1, counted over (image, panel, row), of out (N, M, OH, OW) at op from x
    (N, C, H, W) at xp: epilogue(sum over (c, i, j) of x[c, oh*s - pt + i, ow*s - pl + j] *
    w[k, m] + b[m] [+ res]), taps outside the image zero. wp: pack's filters; s 1 or 2; rp the
    residual (0: none); epi an EPI_* code with clamp bounds lo, hi."""
    sig = types.void(*(types.intp,) * 19, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        xp_i, C, H, W, s, pt, pl, kh, kw, wp_i, M, bp_i, op_i, OH, OW, rp_i, t0, t1, epi, lo, hi = args
        V = Vec(builder, VW, C.type)
        const, c0, c1 = V.const, V.const(0), V.const(1)
        x_base, w_base, b_base, o_base, r_base = (V.fptr(a) for a in (xp_i, wp_i, bp_i, op_i, rp_i))
        accs = [cgutils.alloca_once(builder, V.vec) for _ in range(PANEL)]
        wide = builder.icmp_signed("==", builder.srem(M, const(PANEL)), c0)
        tiles = builder.sdiv(builder.add(OW, const(VW - 1)), const(VW))
        image = builder.mul(builder.mul(C, H), W)
        taps = builder.mul(kh, kw)
        # interior tiles: every column a stride-s load of 16 positions reads lies in the row
        span = builder.add(builder.mul(const(VW), s), builder.sub(kw, const(2)))

        def reduce(NP, S, masked, x_img, ih0, i_lo, i_hi, col0, panel):
            """accs[:NP] += the tile's products over (c, i in [i_lo, i_hi), j)."""
            with cgutils.for_range(builder, C) as lc:
                with cgutils.for_range_slice(builder, i_lo, i_hi, c1, inc=True) as (i, _):
                    row = builder.gep(x_img, [builder.mul(builder.add(builder.mul(lc.index, H), builder.add(ih0, i)), W)])
                    k0 = builder.mul(builder.add(builder.mul(lc.index, kh), i), kw)
                    with cgutils.for_range(builder, kw) as lj:
                        col = builder.add(col0, lj.index)
                        if S == 1:
                            xv = V.load(row, col, V.inside(col, W) if masked else None)
                        else:
                            col2 = builder.add(col, const(VW))
                            xv = V.evens(V.load(row, col, V.inside(col, W) if masked else None),
                                         V.load(row, col2, V.inside(col2, W) if masked else None))
                        wk = builder.gep(panel, [builder.mul(builder.add(k0, lj.index), const(NP))])
                        for m in range(NP):
                            wv = V.splat(builder.load(builder.gep(wk, [const(m)])))
                            builder.store(V.fma(wv, xv, builder.load(accs[m])), accs[m])

        def store(NP, img, m0, oh, ow0, count, with_res, ep):
            mask = V.below(count)
            lo_v, hi_v = V.splat(lo), V.splat(hi)
            for m in range(NP):
                ch = builder.add(m0, const(m))
                at = builder.add(builder.mul(builder.add(builder.mul(builder.add(builder.mul(img, M), ch), OH), oh), OW), ow0)
                res_v = V.load(r_base, at, mask) if with_res else None
                bias_v = V.splat(builder.load(builder.gep(b_base, [ch])))
                V.store(V.epilogue(builder.load(accs[m]), bias_v, res_v, ep, lo_v, hi_v), o_base, at, mask)

        def per_item(t, NP):
            """Work item t with panels of NP channels."""
            panels = builder.sdiv(M, const(NP))
            img = builder.sdiv(t, builder.mul(panels, OH))
            m0 = builder.mul(builder.srem(builder.sdiv(t, OH), panels), const(NP))
            oh = builder.srem(t, OH)
            ih0 = builder.sub(builder.mul(oh, s), pt)
            neg = builder.sub(c0, ih0)
            i_lo = builder.select(builder.icmp_signed(">", neg, c0), neg, c0)
            room = builder.sub(H, ih0)
            i_hi = builder.select(builder.icmp_signed("<", room, kh), room, kh)
            x_img = builder.gep(x_base, [builder.mul(img, image)])
            panel = builder.gep(w_base, [builder.mul(m0, builder.mul(C, taps))])
            has_res = builder.icmp_signed("!=", rp_i, c0)
            # no activation is a clamp to (-inf, inf) (vec_epilogue's bounds): one variant fewer to compile
            eps = [(builder.icmp_signed("==", epi, const(e)), e) for e in (EPI_HARDSWISH, EPI_SILU)] + [(None, EPI_CLAMP)]
            with cgutils.for_range(builder, tiles) as tl:
                ow0 = builder.mul(tl.index, const(VW))
                left = builder.sub(OW, ow0)
                count = builder.select(builder.icmp_signed("<", left, const(VW)), left, const(VW))
                col0 = builder.sub(builder.mul(ow0, s), pl)
                inner = builder.and_(builder.icmp_signed("==", count, const(VW)),
                                     builder.and_(builder.icmp_signed(">=", col0, c0),
                                                  builder.icmp_signed("<", builder.add(col0, span), W)))
                for a in accs[:NP]:
                    builder.store(V.zero, a)
                dispatch(builder, [(builder.icmp_signed("==", s, c1), 1), (None, 2)], lambda S: dispatch(
                    builder, [(inner, False), (None, True)], lambda masked: reduce(
                        NP, S, masked, x_img, ih0, i_lo, i_hi, col0, panel)))
                dispatch(builder, [(has_res, True), (None, False)], lambda with_res: dispatch(
                    builder, eps, lambda ep: store(NP, img, m0, oh, ow0, count, with_res, ep)))

        with cgutils.for_range_slice(builder, t0, t1, c1, inc=True) as (t, _):
            dispatch(builder, [(wide, PANEL), (None, HALF)] if HALF != PANEL else [(None, PANEL)], lambda NP: per_item(t, NP))
        return context.get_dummy_value()

    return sig, codegen


_I = types.intp
# (x, C, H, W, stride, pad top, pad left, kh, kw, packed filters, M, bias, out, OH, OW, res (0:
# none), items t0 .. t1, EPI_* code) as integers and addresses, then lo, hi
SIGNATURE = types.int64(*(_I,) * 19, types.float32, types.float32)
SYMBOL = "onnxjit_conv_lanes_v2"


@callback(SYMBOL, SIGNATURE, error_model="numpy")
def rows_callback(xp, C, H, W, s, pt, pl, kh, kw, wp, M, bp, op, OH, OW, rp, t0, t1, epi, lo, hi):
    """_rows as a C callback."""
    _rows(xp, C, H, W, s, pt, pl, kh, kw, wp, M, bp, op, OH, OW, rp, t0, t1, epi, lo, hi)
    return 0


_call = types.ExternalFunction(SYMBOL, SIGNATURE)


@njit(cache=True, error_model="numpy")
def _run(x, wp, b, out, strides, pads_begin, kernel, res, t0, t1, act, alpha, beta):
    """The callback over items t0 .. t1, the operands checked (copied where not contiguous)."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    M, OH, OW = out.shape[1], out.shape[3], out.shape[4]
    s = strides[1]
    if (x.itemsize != 4 or wp.itemsize != 4 or b.itemsize != 4 or out.itemsize != 4 or res.itemsize != 4
            or wp.size != M * C * kernel[0] * kernel[1] or b.size != M or M % HALF != 0 or out.shape[0] != N
            or strides[2] != s or s < 1 or s > 2 or not out.flags.c_contiguous or (res.size > 0 and res.shape != out.shape)):
        raise ValueError("conv_lanes: operands do not agree")
    xc, bc, rc = np.ascontiguousarray(x), np.ascontiguousarray(b), np.ascontiguousarray(res)
    epi, lo, hi = vec_epilogue_silu(act, alpha, beta)
    _call(xc.ctypes.data, C, H, W, s, pads_begin[1], pads_begin[2], kernel[0], kernel[1], wp.ctypes.data, M,
          bc.ctypes.data, out.ctypes.data, OH, OW, rc.ctypes.data if rc.size > 0 else 0, t0, t1, epi, lo, hi)
    return xc.size + wp.size + bc.size + rc.size     # alive through the call


@njit(cache=True, error_model="numpy", callbacks=False)
def items(out_shape):
    """Work items (output rows over images and channel panels)."""
    return out_shape[0] * (out_shape[1] // panel_width(out_shape[1])) * out_shape[3]


@njit(cache=True, error_model="numpy")
def conv(x, wp, b, out, strides, pads_begin, kernel, res, act, alpha, beta):
    """out = act(conv(x, w) + b [+ res]) for x (N, C, 1, H, W), out (N, M, 1, OH, OW) float32,
    w packed by pack, kernel (kh, kw), strides 1 or 2, act one of nn's ACT_NONE, RELU, CLIP,
    HARDSWISH, SILU (lower_nn._conv_lanes says which convs: 2-D, group 1, dilation 1, M a
    multiple of PANEL or M == 8)."""
    _run(x, wp, b, out, strides, pads_begin, kernel, res, 0, items(out.shape), act, alpha, beta)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_par(x, wp, b, out, strides, pads_begin, kernel, res, act, alpha, beta, parts):
    """conv with its work items in `parts` ranges, one a thread."""
    T = items(out.shape)
    for p in prange(parts):
        _run(x, wp, b, out, strides, pads_begin, kernel, res, p * T // parts, (p + 1) * T // parts, act, alpha, beta)
