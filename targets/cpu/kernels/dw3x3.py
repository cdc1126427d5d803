"""3x3 depthwise convolution of float32 NCHW planes, in vectors along each output row.

Why: the Numba paths in nn.py (phase planes, the same-size plane, channels-last blocks) copy
every plane into a padded buffer and run short loops per plane; on mobilenetv2_half they cost
1.5 ms at one thread where onnxruntime's NCHWc kernels took 0.45 (14x14 planes at 0.4 us a
plane, stride 2 at three times onnxruntime). Here one LLVM-IR loop nest reads the input plane
in place: each output vector (VW columns of a row) is nine multiply-adds of tap vectors,
each a masked load whose masked-off lanes (columns and rows outside the plane) read as
the zero padding, so no padded copy is made and the plane's edges need no second pass. At
stride 2 a tap vector is the even (or odd) lanes of two loads, one shuffle. The epilogue
(bias, residual, Relu/Clip/HardSwish) runs in registers before a masked store; other
activations run over the finished plane (nn._activate).

Called by symbol (SYMBOL) like the GEMM in sgemm.py: a C callback compiled once."""
import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import njit
from .sgemm import W as VW_FULL, voidptr

# the epilogue's activation, as the kernel applies it (nn.ACT_* codes map onto these)
EPI_NONE, EPI_CLAMP, EPI_HARDSWISH = 0, 1, 2


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
            f32, i32, i1 = ir.FloatType(), ir.IntType(32), ir.IntType(1)
            vec, ivec, mvec = ir.VectorType(f32, VW), ir.VectorType(i32, VW), ir.VectorType(i1, VW)
            idx = H.type
            mod = builder.module
            fma = cgutils.get_or_insert_function(mod, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{VW}f32")
            mload = cgutils.get_or_insert_function(mod, ir.FunctionType(vec, [vec.as_pointer(), i32, mvec, vec]),
                                                   f"llvm.masked.load.v{VW}f32.p0")
            mstore = cgutils.get_or_insert_function(mod, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), i32, mvec]),
                                                    f"llvm.masked.store.v{VW}f32.p0")
            zero_v = ir.Constant(vec, [0.0] * VW)
            lanes = ir.Constant(ivec, list(range(VW)))
            c0 = ir.Constant(idx, 0)
            align = ir.Constant(i32, 4)

            def splat(x, vt):
                undef = ir.Constant(vt, ir.Undefined)
                return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)), undef,
                                              ir.Constant(ivec, [0] * VW))

            fptr = f32.as_pointer()
            x_base, o_base = builder.inttoptr(xp_i, fptr), builder.inttoptr(op_i, fptr)
            r_base, w_base = builder.inttoptr(rp_i, fptr), builder.inttoptr(wp_i, fptr)
            taps = [splat(builder.load(builder.gep(w_base, [ir.Constant(idx, k)])), vec) for k in range(9)]
            bias_v, lo_v, hi_v = splat(bias, vec), splat(lo, vec), splat(hi, vec)
            W_v = splat(builder.trunc(Wd, i32), ivec)
            zero_i = ir.Constant(ivec, [0] * VW)
            one_v, sixth_v, half_v = (ir.Constant(vec, [c] * VW) for c in (1.0, 1.0 / 6.0, 0.5))
            evens = ir.Constant(ivec, list(range(0, 2 * VW, 2)))
            odds = ir.Constant(ivec, list(range(1, 2 * VW, 2)))
            blocks = builder.sdiv(builder.add(OW, ir.Constant(idx, VW - 1)), ir.Constant(idx, VW))
            pairs = builder.sdiv(builder.add(OH, ir.Constant(idx, 1)), ir.Constant(idx, 2))

            def const(v):
                return ir.Constant(idx, v)

            def col_mask(col):
                """Lanes whose column col + lane is inside the plane (col: i64, may be < 0)."""
                c = builder.add(lanes, splat(builder.trunc(col, i32), ivec))
                return builder.and_(builder.icmp_signed(">=", c, zero_i), builder.icmp_signed("<", c, W_v))

            def load(row, mask, col):
                """Columns col .. col + VW of an input row, zero where mask is off."""
                row_ptr, row_ok = row
                p = builder.bitcast(builder.gep(row_ptr, [col]), vec.as_pointer())
                return builder.call(mload, [p, align, builder.and_(mask, row_ok), zero_v])

            def epilogue(v, r_row, ow0, m_out, with_res, epi):
                """act(v + bias [+ res]); the residual read under m_out (None: all lanes)."""
                v = builder.fadd(v, bias_v)
                if with_res:
                    p = builder.bitcast(builder.gep(r_row, [ow0]), vec.as_pointer())
                    rv = builder.load(p, align=4) if m_out is None else builder.call(mload, [p, align, m_out, zero_v])
                    v = builder.fadd(v, rv)
                if epi == EPI_CLAMP:
                    v = builder.select(builder.fcmp_ordered("<", v, lo_v), lo_v, v)
                    v = builder.select(builder.fcmp_ordered(">", v, hi_v), hi_v, v)
                elif epi == EPI_HARDSWISH:
                    g = builder.fadd(builder.fmul(v, sixth_v), half_v)
                    g = builder.select(builder.fcmp_ordered(">", g, one_v), one_v, g)
                    g = builder.select(builder.fcmp_ordered("<", g, zero_v), zero_v, g)
                    v = builder.fmul(v, g)
                return v

            def block(stride, with_res, epi, rows, outs, second, ow0, masked):
                """Output columns ow0 .. ow0 + VW of the iteration's two rows; masked: the loads may
                leave the plane (and its rows may be outside it), the stores the output row."""
                col = builder.sub(builder.mul(ow0, const(stride)), pw)
                offsets = (0, 1, 2) if stride == 1 else (0, VW, 2, VW + 2)
                cols = [builder.add(col, const(o)) for o in offsets]
                masks = [col_mask(c) for c in cols] if masked else None
                taps_of = {}

                def row_taps(kh_in):
                    """The three tap vectors (kw = 0, 1, 2) of input row kh_in of the iteration."""
                    if kh_in not in taps_of:
                        row_ptr, row_ok = rows[kh_in]
                        if masked:
                            vs = [builder.call(mload, [builder.bitcast(builder.gep(row_ptr, [c]), vec.as_pointer()), align,
                                                       builder.and_(m, row_ok), zero_v]) for c, m in zip(cols, masks)]
                        else:
                            vs = [builder.load(builder.bitcast(builder.gep(row_ptr, [c]), vec.as_pointer()), align=4)
                                  for c in cols]
                        if stride == 2:
                            a, b, c, d = vs
                            vs = [builder.shuffle_vector(a, b, evens), builder.shuffle_vector(a, b, odds),
                                  builder.shuffle_vector(c, d, evens)]
                        taps_of[kh_in] = vs
                    return taps_of[kh_in]

                if masked:
                    left = builder.trunc(builder.sub(OW, ow0), i32)
                    m_out = builder.icmp_signed("<", lanes, splat(left, ivec))
                for r in range(2):
                    acc = None
                    for kh in range(3):
                        tv = row_taps(r * stride + kh)
                        for kw in range(3):
                            t = taps[3 * kh + kw]
                            acc = builder.fmul(t, tv[kw]) if acc is None else builder.call(fma, [t, tv[kw], acc])
                    o_ptr, r_ptr = outs[r]
                    p = builder.bitcast(builder.gep(o_ptr, [ow0]), vec.as_pointer())
                    if masked:
                        mask = m_out if r == 0 else builder.and_(m_out, second)
                        builder.call(mstore, [epilogue(acc, r_ptr, ow0, mask, with_res, epi), p, align, mask])
                    else:
                        with builder.if_then(builder.extract_element(second, ir.Constant(i32, 0)) if r else
                                             ir.Constant(i1, 1)):
                            v = epilogue(acc, r_ptr, ow0, None, with_res, epi)
                            builder.store(v, p, align=4)

            def body(stride, with_res, epi):
                # Two output rows an iteration: two independent chains of nine FMAs in flight, and at
                # stride 1 four input rows read for both (an odd last row is computed, not stored).
                # Blocks whose taps all lie inside the plane's rows and columns load without masks.
                span = VW + 2 if stride == 1 else 2 * VW + 2
                b_lo = builder.sdiv(builder.add(pw, const(VW * stride - 1)), const(VW * stride))
                fit = builder.add(builder.sub(builder.add(Wd, pw), const(span)), const(VW * stride))   # >= 0 iff block 0 fits
                b_hi = builder.select(builder.icmp_signed("<", fit, c0), c0, builder.sdiv(fit, const(VW * stride)))
                b_hi = builder.select(builder.icmp_signed("<", builder.sdiv(OW, const(VW)), b_hi), builder.sdiv(OW, const(VW)), b_hi)
                b_hi = builder.select(builder.icmp_signed("<", b_hi, b_lo), b_lo, b_hi)
                b_hi = builder.select(builder.icmp_signed("<", blocks, b_hi), blocks, b_hi)
                b_lo = builder.select(builder.icmp_signed("<", blocks, b_lo), blocks, b_lo)
                with cgutils.for_range(builder, pairs) as row_loop:
                    oh = builder.mul(row_loop.index, const(2))
                    ih0 = builder.sub(builder.mul(oh, const(stride)), ph)
                    rows = []
                    for kh in range(stride + 3):
                        ih = builder.add(ih0, const(kh))
                        ok = builder.and_(builder.icmp_signed(">=", ih, c0), builder.icmp_signed("<", ih, H))
                        # a row outside the plane is read with an empty mask, at row 0 (never touched)
                        rows.append((builder.gep(x_base, [builder.mul(builder.select(ok, ih, c0), Wd)]), splat(ok, mvec)))
                    inside = builder.and_(builder.icmp_signed(">=", ih0, c0),
                                          builder.icmp_signed("<=", builder.add(ih0, const(stride + 2)), builder.sub(H, const(1))))
                    second = splat(builder.icmp_signed("<", builder.add(oh, const(1)), OH), mvec)
                    outs = [(builder.gep(o_base, [builder.mul(builder.add(oh, const(r)), OW)]),
                             builder.gep(r_base, [builder.mul(builder.add(oh, const(r)), OW)])) for r in range(2)]

                    def blocks_loop(lo, hi, masked):
                        with cgutils.for_range_slice(builder, lo, hi, const(1), inc=True) as (b, _):
                            block(stride, with_res, epi, rows, outs, second, builder.mul(b, const(VW)), masked)

                    with builder.if_else(inside) as (plain, edge):
                        with plain:
                            blocks_loop(c0, b_lo, True)
                            blocks_loop(b_lo, b_hi, False)
                            blocks_loop(b_hi, blocks, True)
                        with edge:
                            blocks_loop(c0, blocks, True)

            def dispatch(cases, emit):
                """if/else over (flag, value) cases on a run-time integer; the last is the else."""
                (flag, value), rest = cases[0], cases[1:]
                if not rest:
                    emit(value)
                    return
                with builder.if_else(flag) as (yes, no):
                    with yes:
                        emit(value)
                    with no:
                        dispatch(rest, emit)

            has_res = builder.icmp_signed("!=", rp_i, c0)
            epi_cases = [(builder.icmp_signed("==", epi, const(e)), e) for e in (EPI_CLAMP, EPI_HARDSWISH, EPI_NONE)]
            dispatch([(builder.icmp_signed("==", s, const(2)), 2), (None, 1)],
                     lambda st: dispatch([(has_res, True), (None, False)],
                                         lambda rs: dispatch(epi_cases, lambda e: body(st, rs, e))))

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


_I = types.intp
# (x, N, C, H, W, w, M, b, out, OH, OW, res (0: none), stride, pad top, pad left, planes t0 .. t1
# over N*M, EPI_* code, lo, hi) as integers and addresses, the clamp bounds as float32
SIGNATURE = types.int64(*(_I,) * 18, types.float32, types.float32)
SYMBOL = "onnxjit_dw3x3_v1"


@njit(cache=True, error_model="numpy")
def _planes(xp, N, C, H, W, wp, M, bp, op, OH, OW, rp, s, ph, pw, t0, t1, epi, lo, hi):
    """Planes t0 .. t1 (over N*M) of a depthwise conv with M // C filters a channel."""
    mult = M // C
    b = carray(voidptr(bp), M, np.float32)
    for t in range(t0, t1):
        m = t % M
        src = xp + 4 * ((t // M) * C + m // mult) * H * W
        _plane(src, H, W, wp + 4 * 9 * m, op + 4 * t * OH * OW, OH, OW, s, ph, pw,
               rp + 4 * t * OH * OW if rp != 0 else 0, b[m], lo, hi, epi)
    return 0


@cfunc(SIGNATURE, cache=True, error_model="numpy")
def dw3x3(xp, N, C, H, W, wp, M, bp, op, OH, OW, rp, s, ph, pw, t0, t1, epi, lo, hi):
    """_planes as a C callback."""
    return _planes(xp, N, C, H, W, wp, M, bp, op, OH, OW, rp, s, ph, pw, t0, t1, epi, lo, hi)


ll.add_symbol(SYMBOL, dw3x3.address)
call = types.ExternalFunction(SYMBOL, SIGNATURE)

