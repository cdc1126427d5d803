"""float32 3x3 depthwise convolutions of small planes (28x28 to 7x7, and stride 2 from 56x56) with
one vector of channels in the lanes (16 with AVX-512, 8 with AVX2): each input row of those
channels is transposed in registers into one vector a column, then every output is nine
multiply-adds of whole vectors (a filter vector a tap), and each output row is transposed back
into NCHW rows with bias, residual and Relu/Clip/HardSwish.

Why: window3x3.py vectorises along a plane's rows, which on a 7- or 14-wide plane leaves
lanes idle and masks every load: 6.6 cycles an output at stride 2 from 14x14 (onnxruntime's
NCHWc kernel about 2), 4.0 on 7x7 at stride 1; mobilenetv2_half has ~0.26 ms of such convs
at one thread. Rows wider than a vector take blocks of VW input columns and chunks of 16
outputs (8 with AVX2).

Transposed input rows live in a ring of three slots of a small scratch (plus a slot of zeros
for rows outside the plane); a slot holds column -1 (zero), the plane's columns, and zeros
after, so the taps of any output column are plain vector loads. Called by symbol (SYMBOL).
"""
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import callback, njit
from .nn import vec_epilogue
from .share import chunk_count, counters, next_chunk
from .sgemm import W as VW
from .vecir import EPI_CLAMP, EPI_HARDSWISH, Vec, dispatch, store_tile, transpose_rounds, transpose_square

LANES = VW              # channels a group: one vector (16 with AVX-512, 8 with AVX2)
MAX_W = 128             # input columns at most


@intrinsic
def _groups(typingctx, xp, C, H, W, wtp, bp, op, OH, OW, rp, s, ph, pw, sp, sv, g0, g1, epi, lo, hi):
    """Channel groups g0 .. g1 (over N * C / 16) of out (N, C, OH, OW) = epilogue(dwconv3x3(x)
    + b [+ res]); wtp: the filters as (9, C); sp: zeroed scratch of four slots of sv vectors
    (slot_vectors)."""
    sig = types.void(*(types.intp,) * 18, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        xp_i, C, H, W, wt_i, bp_i, op_i, OH, OW, rp_i, s, ph, pw, sp_i, sv, g0, g1, epi, lo, hi = args
        V = Vec(builder, VW, C.type)
        H8 = Vec(builder, 8, C.type)
        const, c0, one = V.const, V.const(0), V.const(1)
        x_base, wt_base, b_base, o_base, r_base, s_base = (V.fptr(a) for a in (xp_i, wt_i, bp_i, op_i, rp_i, sp_i))
        groups_c = builder.sdiv(C, const(LANES))
        plane_in, plane_out = builder.mul(H, W), builder.mul(OH, OW)
        slot_floats = builder.mul(sv, const(VW))
        zero_slot = builder.gep(s_base, [builder.mul(const(3), slot_floats)])

        in_mask8 = H8.below(W)
        narrow_in = builder.icmp_signed("<=", W, const(8))

        blocks_in = builder.sdiv(builder.add(W, const(VW - 1)), const(VW))

        def wide_rows(src, slot):
            """The row in blocks of VW columns, each transposed into VW channel vectors."""
            with cgutils.for_range(builder, blocks_in) as bl:
                c_in = builder.mul(bl.index, const(VW))
                m_in = V.below(builder.sub(W, c_in))
                rows = [V.load(src, builder.add(builder.mul(const(c), plane_in), c_in), m_in) for c in range(LANES)]
                at = builder.mul(builder.add(c_in, one), const(VW))
                for j, col in enumerate(transpose_square(builder, rows)):
                    V.store(col, slot, builder.add(at, const(j * VW)))

        def transpose_row(img, c_first, ih):
            """Input row ih of channels c_first .. + LANES into ring slot ih % 3 from column 1 on,
            in blocks of VW columns (with AVX-512, planes at most 8 wide: one block of 8, half the
            shuffles); the slot's later columns stay zero."""
            src = builder.gep(x_base, [builder.add(builder.mul(builder.add(builder.mul(img, C), c_first), plane_in),
                                                   builder.mul(ih, W))])
            slot = builder.gep(s_base, [builder.mul(builder.srem(ih, const(3)), slot_floats)])
            if VW == 8:
                wide_rows(src, slot)
                return
            with builder.if_else(narrow_in) as (narrow, wide):
                with narrow:
                    rows = [H8.load(src, builder.mul(const(c), plane_in), in_mask8) for c in range(LANES)]
                    for j, col in enumerate(transpose16x8(builder, rows)):
                        V.store(col, slot, const((j + 1) * VW))
                with wide:
                    wide_rows(src, slot)

        def body(stride, NW, with_res, ep):
            """One work item (image, channel group): NW output columns in registers (8 or 16; with
            AVX2's 16 registers always 8) at a time, as many times as the row needs."""
            def run(t):
                img = builder.sdiv(t, groups_c)
                c_first = builder.mul(builder.srem(t, groups_c), const(LANES))
                taps = [V.load(wt_base, builder.add(builder.mul(const(k), C), c_first)) for k in range(9)]
                bias = V.load(b_base, c_first)
                done = cgutils.alloca_once_value(builder, c0)       # input rows transposed so far
                with cgutils.for_range(builder, OH) as rl:
                    r = rl.index
                    top = builder.sub(builder.mul(r, const(stride)), ph)
                    need = builder.add(top, const(3))
                    need = builder.select(builder.icmp_signed("<", need, H), need, H)
                    start = builder.load(done)
                    start = builder.select(builder.icmp_signed("<", start, top), top, start)
                    start = builder.select(builder.icmp_signed("<", start, c0), c0, start)
                    with cgutils.for_range_slice(builder, start, need, one, inc=True) as (ih, _):
                        transpose_row(img, c_first, ih)
                    builder.store(builder.select(builder.icmp_signed("<", start, need), need, start), done)
                    # each tap row's slot (the zero slot outside the plane), at column -pw + kw
                    bases = []
                    for kh in range(3):
                        ih = builder.add(top, const(kh))
                        inside = builder.and_(builder.icmp_signed(">=", ih, c0), builder.icmp_signed("<", ih, H))
                        slot = builder.gep(s_base, [builder.mul(builder.srem(builder.select(inside, ih, c0), const(3)),
                                                                slot_floats)])
                        slot = builder.select(inside, slot, zero_slot)
                        bases.append([builder.gep(slot, [builder.mul(builder.add(builder.sub(const(kw), pw), one), const(VW))])
                                      for kw in range(3)])
                    chunks = builder.sdiv(builder.add(OW, const(NW - 1)), const(NW))
                    with cgutils.for_range(builder, chunks) as cl:
                        ow0 = builder.mul(cl.index, const(NW))
                        col0 = builder.mul(builder.mul(ow0, const(stride)), const(VW))
                        accs = []
                        for ow in range(NW):
                            acc = bias
                            for kh in range(3):
                                for kw in range(3):
                                    tap = V.load(bases[kh][kw], builder.add(col0, const(ow * stride * VW)))
                                    acc = V.fma(taps[3 * kh + kw], tap, acc)
                            accs.append(acc)
                        left = builder.sub(OW, ow0)
                        for half in range(NW // 8):
                            def at_of(c, half=half):
                                return builder.add(builder.mul(builder.add(builder.mul(img, C), builder.add(c_first, const(c))), plane_out),
                                                   builder.add(builder.mul(r, OW), builder.add(ow0, const(8 * half))))
                            # the accumulators began at the bias: none to add here
                            store_tile(V, H8, accs[8 * half:8 * half + 8], V.fconst(-0.0), at_of,
                                       H8.below(builder.sub(left, const(8 * half))), o_base, r_base, with_res, ep, lo, hi)
            return run

        has_res = builder.icmp_signed("!=", rp_i, c0)
        # no activation is a clamp to (-inf, inf) (vec_epilogue's bounds): one variant fewer to compile
        eps = [(builder.icmp_signed("==", epi, const(EPI_HARDSWISH)), EPI_HARDSWISH), (None, EPI_CLAMP)]
        narrow = builder.icmp_signed("<=", OW, const(8))
        with cgutils.for_range_slice(builder, g0, g1, one, inc=True) as (t, _):
            dispatch(builder, [(builder.icmp_signed("==", s, const(2)), 2), (None, 1)], lambda st: dispatch(
                builder, [(narrow, 8), (None, 16)] if VW == 16 else [(None, 8)], lambda nw: dispatch(
                    builder, [(has_res, True), (None, False)], lambda rs: dispatch(
                        builder, eps, lambda ep: body(st, nw, rs, ep)(t)))))
        return context.get_dummy_value()

    return sig, codegen


def transpose16x8(builder, rows):
    """16 vectors of 8 lanes -> 8 vectors of 16 (out[j][c] = rows[c][j]): pairs (c, c + 8) joined,
    then an 8x8 transpose in each 256-bit half at once, three rounds (32 shuffles in all)."""
    join = ir.Constant(ir.VectorType(ir.IntType(32), 16), list(range(16)))
    return transpose_rounds(builder, [(builder.shuffle_vector(rows[i], rows[i + 8], join),
                                        [(i, l) for l in range(8)] + [(i + 8, l) for l in range(8)]) for i in range(8)], 2)


_I = types.intp
# (x, C, H, W, filters (9, C), bias, out, OH, OW, res (0: none), stride, pad top, pad left,
# scratch, vectors a slot, groups g0 .. g1, EPI_* code) as integers and addresses, then lo, hi
SIGNATURE = types.int64(*(_I,) * 18, types.float32, types.float32)
SYMBOL = "onnxjit_dw_small_v2"


@callback(SYMBOL, SIGNATURE, error_model="numpy")
def groups_callback(xp, C, H, W, wtp, bp, op, OH, OW, rp, s, ph, pw, sp, sv, g0, g1, epi, lo, hi):
    """_groups as a C callback."""
    _groups(xp, C, H, W, wtp, bp, op, OH, OW, rp, s, ph, pw, sp, sv, g0, g1, epi, lo, hi)
    return 0


_call = types.ExternalFunction(SYMBOL, SIGNATURE)


def pack(w: np.ndarray) -> np.ndarray:
    """Filters (C, 1, 1, 3, 3) as the kernel reads them, (9, C) float32 (compile time): a tap's
    16 channels one vector. Transposed here, not in each call: the copy cost ~5 us of a 480-channel
    7x7 conv's ~13 (mobilenetv2_half: 13 such convs a call)."""
    return np.ascontiguousarray(np.asarray(w, np.float32).reshape(w.shape[0], 9).T)


@njit(cache=True, error_model="numpy")
def _setup(x, wt, b, out, strides, pads_begin, res):
    """(x, b, res) contiguous float32, the shapes checked (wt: pack's filters)."""
    N, C, W = x.shape[0], x.shape[1], x.shape[4]
    if (x.itemsize != 4 or wt.itemsize != 4 or b.itemsize != 4 or out.itemsize != 4 or res.itemsize != 4
            or C % LANES != 0 or W > MAX_W or out.shape[4] > W + 2
            or out.shape[0] != N or out.shape[1] != C or strides[1] != strides[2] or pads_begin[1] > 1 or pads_begin[2] > 1
            or wt.shape[0] != 9 or wt.shape[1] != C or not wt.flags.c_contiguous or b.size != C or not out.flags.c_contiguous
            or (res.size > 0 and res.shape != out.shape)):
        raise ValueError("dw_small: operands do not agree")
    return np.ascontiguousarray(x), np.ascontiguousarray(b), np.ascontiguousarray(res)


@njit(cache=True, error_model="numpy")
def slot_vectors(W, OW, s):
    """Vectors a slot: column -1, the input's blocks of VW columns, and zeros up to the last tap
    of the last output chunk of 16 (which computes positions past OW and does not store them)."""
    return max((W + VW - 1) // VW * VW + 1, ((OW + 15) // 16 * 16) * s + 3)


@njit(cache=True, error_model="numpy")
def _run(x, wt, b, out, strides, pads_begin, res, g0, g1, act, alpha, beta, scratch, part):
    """Groups g0 .. g1 with part `part` of scratch (scratch_floats each, zeroed)."""
    epi, lo, hi = vec_epilogue(act, alpha, beta)
    sv = slot_vectors(x.shape[4], out.shape[4], strides[1])
    sp = (scratch.ctypes.data + 63) // 64 * 64 + 4 * part * scratch_floats(sv)
    _call(x.ctypes.data, x.shape[1], x.shape[3], x.shape[4], wt.ctypes.data, b.ctypes.data, out.ctypes.data,
          out.shape[3], out.shape[4], res.ctypes.data if res.size > 0 else 0, strides[1], pads_begin[1], pads_begin[2],
          sp, sv, g0, g1, epi, lo, hi)
    return x.size + wt.size + b.size + res.size + scratch.size     # alive through the call


@njit(cache=True, error_model="numpy")
def scratch_floats(sv):
    """Floats of one thread's scratch: four slots of sv vectors (a multiple of 16: aligned)."""
    return 4 * sv * VW


@njit(cache=True, error_model="numpy")
def _scratch(x, out, strides, parts):
    """Zeroed scratch for `parts` threads, allocated once before any forks (an allocation in
    each thread of the parallel loop cost more than the 480-channel 7x7 conv's work there)."""
    return np.zeros(parts * scratch_floats(slot_vectors(x.shape[4], out.shape[4], strides[1])) + 16, np.float32)


@njit(cache=True, error_model="numpy")
def conv(x, wt, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta):
    """window3x3.conv's arguments and contract (a depthwise 3x3 conv, one filter a channel,
    strides 1 or 2, pads 0 or 1) but the filters as pack gives them (wt), for planes at most 16
    wide and channels in multiples of 16 (lower_nn._dw_small), act one of nn's ACT_NONE, RELU,
    CLIP, HARDSWISH."""
    x, b, res = _setup(x, wt, b, out, strides, pads_begin, res)
    _run(x, wt, b, out, strides, pads_begin, res, 0, x.shape[0] * x.shape[1] // LANES, act, alpha, beta,
         _scratch(x, out, strides, 1), 0)


@njit(cache=True, error_model="numpy", parallel=True)
def conv_par(x, wt, b, out, strides, pads_begin, dilations, group, res, act, alpha, beta, threads):
    """conv with its channel groups shared out in claimed chunks (share.py), each thread its own
    part of the scratch."""
    x, b, res = _setup(x, wt, b, out, strides, pads_begin, res)
    T = x.shape[0] * x.shape[1] // LANES
    parts = min(T, threads)
    scratch = _scratch(x, out, strides, parts)
    chunks = chunk_count(parts, T)
    nxt = counters(parts, chunks)
    for p in prange(parts):       # each thread its own groups first, then what another has not started (share.py)
        c = next_chunk(nxt, p, parts, chunks)
        while c >= 0:
            _run(x, wt, b, out, strides, pads_begin, res, c * T // chunks, (c + 1) * T // chunks, act, alpha, beta,
                 scratch, p)
            c = next_chunk(nxt, p, parts, chunks)
