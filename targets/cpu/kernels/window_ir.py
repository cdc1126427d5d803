"""The kernel of 3x3 windows over float32 NCHW planes, in vectors along each output row, as
LLVM IR: depthwise convolution (window3x3.py) and MaxPool (maxpool3x3.py).

Why: the Numba paths in nn.py (phase planes, the same-size plane, channels-last blocks) copy
every plane into a padded buffer and run short loops per plane; on mobilenetv2_half they cost
1.5 ms at one thread where onnxruntime's NCHWc kernels took 0.45 (14x14 planes at 0.4 us a
plane, stride 2 at three times onnxruntime). Here one LLVM-IR loop nest reads the input plane
in place: each output vector (VW columns of a row) is nine multiply-adds of tap vectors,
each a masked load whose masked-off lanes (columns and rows outside the plane) read as
the zero padding, so no padded copy is made and the plane's edges need no second pass. At
stride 2 a tap vector is the even (or odd) lanes of two loads, one shuffle. The epilogue
(bias, residual, Relu/Clip/HardSwish) runs in registers before a masked store; other
activations run over the finished plane (nn._activate). MaxPool takes the same loads and
combines the nine taps by its own rule (vecir.Vec.window_max): resnet18_half's 3x3 stride-2
pool of 32 channels, 112x112, 161 -> 101 us (the conv of that shape: 69).

window3x3.py binds the conv's kernel, maxpool3x3.py the pool's: each a C callback compiled
once, where a model has such a layer."""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .sgemm import W as VW_FULL
from .vecir import EPI_CLAMP, EPI_HARDSWISH, EPI_MAX, Vec, dispatch


def make_plane(pool: bool):
    """The plane kernel as a Numba intrinsic: the depthwise conv's variants, or (pool) MaxPool's
    only, so each callback compiles the loop nests it runs."""

    @intrinsic
    def _plane(typingctx, xp, H, W, wp, op, OH, OW, s, ph, pw, rp, bias, lo, hi, epi):
        """out plane (OH, OW) at op = epilogue(conv3x3(x plane (H, W) at xp, the 9 taps at wp) + bias
        [+ res plane at rp, where rp is not 0]), strides (s, s) with s 1 or 2, pads (ph, pw) before.
        epi: EPI_CLAMP clamps to [lo, hi] (`lo if v < lo`, then `hi if v > hi`: NaN passes),
        EPI_HARDSWISH is v * clamp(v * (1/6) + 1/2, 0, 1), EPI_NONE leaves v."""
        sig = types.void(*(types.intp,) * 11, types.float32, types.float32, types.float32, types.intp)

        def codegen(context, builder, signature, args):
            xp_i, H, Wd, wp_i, op_i, OH, OW, s, ph, pw, rp_i, bias, lo, hi, epi = args

            def emit(VW):
                """The kernel with vectors of VW floats."""
                V = Vec(builder, VW, H.type)
                const, c0 = V.const, V.const(0)
                x_base, o_base, r_base, w_base = (V.fptr(a) for a in (xp_i, op_i, rp_i, wp_i))
                bias_v, lo_v, hi_v = V.splat(bias), V.splat(lo), V.splat(hi)
                taps = []
                blocks = builder.sdiv(builder.add(OW, const(VW - 1)), const(VW))
                pairs = builder.sdiv(builder.add(OH, const(1)), const(2))

                def epilogue(v, r_row, ow0, m_out, with_res, epi):
                    """act(v + bias [+ res]); the residual read under m_out (None: all lanes)."""
                    if epi == EPI_MAX:
                        return v
                    return V.epilogue(v, bias_v, V.load(r_row, ow0, m_out) if with_res else None, epi, lo_v, hi_v)

                def block(stride, with_res, epi, rows, outs, second, ow0, masked):
                    """Output columns ow0 .. ow0 + VW of the iteration's two rows; masked: the loads may
                    leave the plane (and its rows may be outside it), the stores the output row."""
                    col = builder.sub(builder.mul(ow0, const(stride)), pw)
                    offsets = (0, 1, 2) if stride == 1 else (0, VW, 2, VW + 2)
                    cols = [builder.add(col, const(o)) for o in offsets]
                    masks = [V.inside(c, Wd) for c in cols] if masked else [None] * len(cols)
                    taps_of = {}

                    def row_taps(kh_in):
                        """The three tap vectors (kw = 0, 1, 2) of input row kh_in of the iteration, with
                        the masks of their lanes inside the plane (None: all are)."""
                        if kh_in not in taps_of:
                            row_ptr, row_ok = rows[kh_in]
                            ms = [builder.and_(m, row_ok) for m in masks] if masked else [None] * len(cols)
                            vs = [V.load(row_ptr, c, m) for c, m in zip(cols, ms)]
                            if stride == 2:
                                vs = [V.evens(vs[0], vs[1]), V.odds(vs[0], vs[1]), V.evens(vs[2], vs[3])]
                                if masked:
                                    ms = [V.evens(ms[0], ms[1]), V.odds(ms[0], ms[1]), V.evens(ms[2], ms[3])]
                            taps_of[kh_in] = vs, ms
                        return taps_of[kh_in]

                    m_out = V.below(builder.sub(OW, ow0)) if masked else None
                    for r in range(2):
                        window = [row_taps(r * stride + kh) for kh in range(3)]
                        if epi == EPI_MAX:
                            acc = V.window_max([t for tv, _ in window for t in tv], [m for _, tm in window for m in tm])
                        else:
                            # a kernel row a chain of three, then their sum: chains of 3 multiply-adds
                            # in flight instead of one of 9 (16 channels at 112x112 stride 1 60 -> 52 us)
                            parts = []
                            for kh, (tv, _) in enumerate(window):
                                part = builder.fmul(taps[3 * kh], tv[0])
                                for kw in (1, 2):
                                    part = V.fma(taps[3 * kh + kw], tv[kw], part)
                                parts.append(part)
                            acc = builder.fadd(builder.fadd(parts[0], parts[1]), parts[2])
                        o_ptr, r_ptr = outs[r]
                        if masked:
                            mask = m_out if r == 0 else builder.and_(m_out, V.splat(second))
                            V.store(epilogue(acc, r_ptr, ow0, mask, with_res, epi), o_ptr, ow0, mask)
                        else:
                            with builder.if_then(second if r else ir.Constant(ir.IntType(1), 1)):
                                V.store(epilogue(acc, r_ptr, ow0, None, with_res, epi), o_ptr, ow0)

                def body(stride, with_res, epi):
                    # the filter's taps (none for a max pool: wp is 0 there)
                    taps[:] = [] if epi == EPI_MAX else [V.splat(builder.load(builder.gep(w_base, [const(k)]))) for k in range(9)]
                    # Two output rows an iteration: two independent chains of nine FMAs in flight, and at
                    # stride 1 four input rows read for both (an odd last row is computed, not stored).
                    # Blocks whose taps all lie inside the plane's rows and columns load without masks.
                    def smin(a, b_):
                        return builder.select(builder.icmp_signed("<", a, b_), a, b_)

                    span = VW + 2 if stride == 1 else 2 * VW + 2
                    b_lo = builder.sdiv(builder.add(pw, const(VW * stride - 1)), const(VW * stride))
                    fit = builder.add(builder.sub(builder.add(Wd, pw), const(span)), const(VW * stride))   # >= 0 iff block 0 fits
                    b_hi = builder.select(builder.icmp_signed("<", fit, c0), c0, builder.sdiv(fit, const(VW * stride)))
                    b_hi = smin(builder.sdiv(OW, const(VW)), b_hi)
                    b_hi = builder.select(builder.icmp_signed("<", b_hi, b_lo), b_lo, b_hi)
                    b_hi, b_lo = smin(blocks, b_hi), smin(blocks, b_lo)
                    with cgutils.for_range(builder, pairs) as row_loop:
                        oh = builder.mul(row_loop.index, const(2))
                        ih0 = builder.sub(builder.mul(oh, const(stride)), ph)
                        rows = []
                        for kh in range(stride + 3):
                            ih = builder.add(ih0, const(kh))
                            ok = builder.and_(builder.icmp_signed(">=", ih, c0), builder.icmp_signed("<", ih, H))
                            # a row outside the plane is read with an empty mask, at row 0 (never touched)
                            rows.append((builder.gep(x_base, [builder.mul(builder.select(ok, ih, c0), Wd)]), V.splat(ok)))
                        inside = builder.and_(builder.icmp_signed(">=", ih0, c0),
                                              builder.icmp_signed("<=", builder.add(ih0, const(stride + 2)), builder.sub(H, const(1))))
                        second = builder.icmp_signed("<", builder.add(oh, const(1)), OH)
                        outs = [(builder.gep(o_base, [builder.mul(builder.add(oh, const(r)), OW)]),
                                 builder.gep(r_base, [builder.mul(builder.add(oh, const(r)), OW)])) for r in range(2)]

                        def blocks_loop(lo_, hi_, masked):
                            with cgutils.for_range_slice(builder, lo_, hi_, const(1), inc=True) as (b_, _):
                                block(stride, with_res, epi, rows, outs, second, builder.mul(b_, const(VW)), masked)

                        with builder.if_else(inside) as (plain, edge):
                            with plain:
                                blocks_loop(c0, b_lo, True)
                                blocks_loop(b_lo, b_hi, False)
                                blocks_loop(b_hi, blocks, True)
                            with edge:
                                blocks_loop(c0, blocks, True)

                has_res = builder.icmp_signed("!=", rp_i, c0)
                # no activation is a clamp to (-inf, inf) (_range's bounds): one variant fewer to compile
                epi_cases = [(builder.icmp_signed("==", epi, const(EPI_HARDSWISH)), EPI_HARDSWISH), (None, EPI_CLAMP)]

                def variants(st):
                    if pool:
                        body(st, False, EPI_MAX)
                    else:
                        dispatch(builder, [(has_res, True), (None, False)],
                                 lambda rs: dispatch(builder, epi_cases, lambda e: body(st, rs, e)))

                dispatch(builder, [(builder.icmp_signed("==", s, const(2)), 2), (None, 1)], variants)

            # Outputs of 8 columns or fewer (7x7 planes) in half-width vectors where the full ones
            # have 16 lanes: twice the planes a cycle (the 512-bit units run as two 256-bit halves)
            if VW_FULL == 16:
                with builder.if_else(builder.icmp_signed("<=", OW, ir.Constant(OW.type, 8))) as (narrow, full):
                    with narrow:
                        emit(8)
                    with full:
                        emit(16)
            else:
                emit(VW_FULL)
            return context.get_dummy_value()

        return sig, codegen

    return _plane
