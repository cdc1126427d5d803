"""float32 3x3 stride-1 convolutions as Winograd F(2x2, 3x3): 2.25x fewer multiply-adds than
the direct or implicit GEMM, which already runs at 90-97% of this machine's FMA peak (as
onnxruntime's NCHWc kernels do): the GEMM's speed cannot be beaten, its work can.

Per image: the input transform writes V[xi][c][t] = (B^T d B)[xi] for the 4x4 patch d of every
2x2 output tile t and channel c; 16 GEMMs M[xi] = U[xi] (M x C) @ V[xi] (C x T) run on sgemm.py's
kernel (V's rows read in place, as an implicit GEMM's image rows); the output transform
writes out = act(A^T M A + bias [+ res]). U = G g G^T comes from nn.winograd_weights at
compile time. The transforms are LLVM-IR loops in vectors of VW tiles (vecir.py): the input
plane is read in place through masked loads (the padding reads as zeros) and a tile's even
and odd columns are split by shuffles, so there is no padded copy; the output tiles' two
columns are interleaved back the same way. Each transform is a C callback, compiled once.

The earlier float64 Winograd in nn.py (Numba transforms, the BLAS) ran a 32-channel 56x56 conv
in 2.0-2.6 ms; this one in about 0.3 ms, where the implicit GEMM took 0.53."""
import functools

import numpy as np
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .blas import gemm_implicit
from .jit import callback, njit
from .nn import vec_epilogue
from .share import chunk_count, counters, next_chunk
from .sgemm import W as VW
from .vecir import CHEAP_MASKS, EPI_CLAMP, EPI_HARDSWISH, Vec, dispatch


def _tile_blocks(builder, V, TW, t0, t1, body):
    """body(th, tw0, lanes, q, end) for the tiles t0 .. t1 (t = th*TW + tw) in runs of at most VW
    along a tile row: tw0 the run's first tile, lanes the mask of its tiles, q its first
    tile's index from t0, end the tile row's last tile of the range + 1."""
    const = V.const
    with cgutils.for_range_slice(builder, builder.sdiv(t0, TW), builder.add(builder.sdiv(builder.sub(t1, const(1)), TW), const(1)),
                                 const(1), inc=True) as (th, _):
        row0 = builder.mul(th, TW)
        lo = builder.sub(t0, row0)
        lo = builder.select(builder.icmp_signed("<", lo, const(0)), const(0), lo)
        hi = builder.sub(t1, row0)
        hi = builder.select(builder.icmp_signed("<", TW, hi), TW, hi)
        runs = builder.sdiv(builder.add(builder.sub(hi, lo), const(V.VW - 1)), const(V.VW))
        with cgutils.for_range(builder, runs) as run:
            tw0 = builder.add(lo, builder.mul(run.index, const(V.VW)))
            body(th, tw0, V.below(builder.sub(hi, tw0)), builder.sub(builder.add(row0, tw0), t0), hi)


@intrinsic
def _input_tiles(typingctx, xp, H, W, ph, pw, TW, t0, t1, vp, vs):
    """V[xi][t - t0] for the tiles t0 .. t1 (t = th*TW + tw) of one channel plane (H, W) at xp
    (pads ph, pw before): V at vp, its 16 planes vs floats apart."""
    sig = types.void(*(types.intp,) * 10)

    def codegen(context, builder, signature, args):
        xp_i, H, Wd, ph, pw, TW, t0, t1, vp_i, vs = args
        V = Vec(builder, VW, H.type)
        const, c0 = V.const, V.const(0)
        x_base, v_base = V.fptr(xp_i), V.fptr(vp_i)
        fsub, fadd = builder.fsub, builder.fadd

        def body(th, tw0, m_out, q, end):
            col = builder.sub(builder.mul(tw0, const(2)), pw)
            cols = [builder.add(col, const(o)) for o in (0, VW, 2, VW + 2)]
            ih0 = builder.sub(builder.mul(th, const(2)), ph)

            def run(masked):
                masks = [V.inside(c, Wd) for c in cols] if masked else [None] * 4
                d = []
                for i in range(4):
                    ih = builder.add(ih0, const(i))
                    if masked:
                        ok = builder.and_(builder.icmp_signed(">=", ih, c0), builder.icmp_signed("<", ih, H))
                        row = builder.gep(x_base, [builder.mul(builder.select(ok, ih, c0), Wd)])   # outside: read nothing
                        a, b, c, e = (V.load(row, c_, builder.and_(m, V.splat(ok))) for c_, m in zip(cols, masks))
                    else:
                        row = builder.gep(x_base, [builder.mul(ih, Wd)])
                        a, b, c, e = (V.load(row, c_) for c_ in cols)
                    d.append([V.evens(a, b), V.odds(a, b), V.evens(c, e), V.odds(c, e)])
                rows_t = [[fsub(d[0][j], d[2][j]) for j in range(4)], [fadd(d[1][j], d[2][j]) for j in range(4)],
                          [fsub(d[2][j], d[1][j]) for j in range(4)], [fsub(d[1][j], d[3][j]) for j in range(4)]]
                for i, e in enumerate(rows_t):
                    vals = (fsub(e[0], e[2]), fadd(e[1], e[2]), fsub(e[2], e[1]), fsub(e[1], e[3]))
                    for j, v in enumerate(vals):
                        V.store(v, builder.gep(v_base, [builder.mul(const(4 * i + j), vs)]), q, m_out if CHEAP_MASKS else None)

            # inside: all 4 rows and the 2 * VW + 2 columns in the plane. Without cheap masks the
            # stores are whole runs of VW tiles: the lanes past the run's last tile land on the
            # next tile row's first tiles, written after (this channel's tiles run in order), or,
            # at the block's end, in its row's slack (v_stride)
            inside = [builder.icmp_signed(">=", ih0, c0), builder.icmp_signed("<=", builder.add(ih0, const(4)), H),
                      builder.icmp_signed(">=", col, c0), builder.icmp_signed("<=", builder.add(col, const(2 * VW + 2)), Wd)]
            V.split_masks(functools.reduce(builder.and_, inside), run)

        _tile_blocks(builder, V, TW, t0, t1, body)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _output_tiles(typingctx, mp, ms, TW, t0, t1, op, OH, OW, rp, bias, lo, hi, epi):
    """The tiles t0 .. t1 of out plane (OH, OW) at op = epilogue(A^T M A + bias [+ res plane at
    rp, rp not 0]) for one output channel: M[xi][t - t0] at mp, its 16 planes ms floats apart;
    epi a vecir EPI_* code with the clamp bounds lo, hi."""
    sig = types.void(*(types.intp,) * 9, types.float32, types.float32, types.float32, types.intp)

    def codegen(context, builder, signature, args):
        mp_i, ms, TW, t0, t1, op_i, OH, OW, rp_i, bias, lo, hi, epi = args
        V = Vec(builder, VW, TW.type)
        const = V.const
        m_base, o_base, r_base = V.fptr(mp_i), V.fptr(op_i), V.fptr(rp_i)
        bias_v, lo_v, hi_v = V.splat(bias), V.splat(lo), V.splat(hi)
        fadd, fsub = builder.fadd, builder.fsub

        def tiles(with_res, kind):
            def body(th, tw0, m_in, q, end):
                col = builder.mul(tw0, const(2))
                halves = (col, builder.add(col, const(VW)))
                # the range's own columns only: another block (another thread) writes the rest of the row
                last = builder.mul(end, const(2))
                last = builder.select(builder.icmp_signed("<", OW, last), OW, last)

                def run(masked):
                    m = [V.load(builder.gep(m_base, [builder.mul(const(k), ms)]), q, m_in if masked else None)
                         for k in range(16)]
                    z = [(fadd(fadd(m[4 * i], m[4 * i + 1]), m[4 * i + 2]), fsub(fsub(m[4 * i + 1], m[4 * i + 2]), m[4 * i + 3]))
                         for i in range(4)]
                    masks = [V.inside(c, last) for c in halves] if masked else [None, None]
                    for r in range(2):
                        if r == 0:
                            y = [fadd(fadd(z[0][c], z[1][c]), z[2][c]) for c in range(2)]
                        else:
                            y = [fsub(fsub(z[1][c], z[2][c]), z[3][c]) for c in range(2)]
                        oh = builder.add(builder.mul(th, const(2)), const(r))
                        with builder.if_then(builder.icmp_signed("<", oh, OH)):
                            o_row = builder.gep(o_base, [builder.mul(oh, OW)])
                            r_row = builder.gep(r_base, [builder.mul(oh, OW)])
                            for v, c, mk in zip(V.interleave(y[0], y[1]), halves, masks):
                                res_v = V.load(r_row, c, mk) if with_res else None
                                V.store(V.epilogue(v, bias_v, res_v, kind, lo_v, hi_v), o_row, c, mk)

                # VW tiles in the run, and its 2 * VW columns all its own
                full = builder.and_(builder.icmp_signed(">=", builder.sub(end, tw0), const(VW)),
                                    builder.icmp_signed("<=", builder.add(col, const(2 * VW)), last))
                V.split_masks(full, run)

            _tile_blocks(builder, V, TW, t0, t1, body)

        has_res = builder.icmp_signed("!=", rp_i, const(0))
        # no activation is a clamp to (-inf, inf) (nn.vec_epilogue's bounds): one variant fewer to compile
        kinds = [(builder.icmp_signed("==", epi, const(EPI_HARDSWISH)), EPI_HARDSWISH), (None, EPI_CLAMP)]
        dispatch(builder, [(has_res, True), (None, False)],
                 lambda rs: dispatch(builder, kinds, lambda e: tiles(rs, e)))
        return context.get_dummy_value()

    return sig, codegen


_I = types.intp
INPUT_SYMBOL, OUTPUT_SYMBOL = "onnxjit_wino_input_v1", "onnxjit_wino_output_v1"
INPUT_SIGNATURE = types.void(*(_I,) * 10)
OUTPUT_SIGNATURE = types.void(*(_I,) * 9, types.float32, types.float32, types.float32, _I)


@callback(INPUT_SYMBOL, INPUT_SIGNATURE)
def input_tiles(xp, H, W, ph, pw, TW, t0, t1, vp, vs):
    """_input_tiles as a C callback."""
    _input_tiles(xp, H, W, ph, pw, TW, t0, t1, vp, vs)


@callback(OUTPUT_SYMBOL, OUTPUT_SIGNATURE)
def output_tiles(mp, ms, TW, t0, t1, op, OH, OW, rp, bias, lo, hi, epi):
    """_output_tiles as a C callback."""
    _output_tiles(mp, ms, TW, t0, t1, op, OH, OW, rp, bias, lo, hi, epi)


_input = types.ExternalFunction(INPUT_SYMBOL, INPUT_SIGNATURE)
_output = types.ExternalFunction(OUTPUT_SYMBOL, OUTPUT_SIGNATURE)


@njit(cache=True, error_model="numpy")
def _check(x, u, b, out, res, ws):
    """The operands the transforms read by address: float32, C-contiguous, shapes that agree."""
    N, C, M = x.shape[0], x.shape[1], out.shape[1]
    if (x.itemsize != 4 or u.itemsize != 4 or out.itemsize != 4 or ws.itemsize != 4
            or not (x.flags.c_contiguous and u.flags.c_contiguous and out.flags.c_contiguous and ws.flags.c_contiguous)):
        raise ValueError("winograd.conv: float32 C-contiguous operands only")
    if u.shape[0] != 16 or u.shape[1] != M or u.shape[2] != C or b.shape[0] != M or out.shape[0] != N:
        raise ValueError("winograd.conv: shapes do not agree")
    if res.size > 0 and (res.shape != out.shape or not res.flags.c_contiguous or res.itemsize != 4):
        raise ValueError("winograd.conv: res must be a float32 C-contiguous array shaped like out")
    if ws.size < workspace(x.shape, out.shape):
        raise ValueError("winograd.conv: the workspace is too small")


# Tiles a block at most: a block's V and M (16 (C + M) floats a tile) are meant to stay in cache
# between the transforms and the GEMMs; a multiple of the GEMM's 32-column panels.
BLOCK_BYTES = 1 << 21


@njit(cache=True, error_model="numpy", callbacks=False)
def block_tiles(C, M, T):
    """Tiles a block: all T where they fit BLOCK_BYTES (or 64 or fewer), else the most that fit in
    whole 32-tile panels (at least one panel)."""
    per_tile = 64 * (C + M)
    if T * per_tile <= BLOCK_BYTES or T <= 64:
        return T
    return max(32, BLOCK_BYTES // per_tile // 32 * 32)


@njit(cache=True, error_model="numpy", callbacks=False)
def workspace(x_shape, out_shape):
    """Floats of the scratch conv and conv_par take: a block's V (16, C, Tb) and M (16, M, Tb).
    The lowering allocates it as a buffer of the graph (the memory plan puts it in the arena):
    allocated per call, 3.2 MB for 32 channels at 56x56 came from fresh pages every time
    (glibc maps blocks that large) and their faults took 1.2 ms, four times the conv."""
    C, M = x_shape[1], out_shape[1]
    T = ((out_shape[3] + 1) // 2) * ((out_shape[4] + 1) // 2)
    Tb = block_tiles(C, M, T)
    return 16 * (C * v_stride(Tb) + M * Tb)


@njit(cache=True, error_model="numpy", callbacks=False)
def v_stride(nt):
    """Floats from one channel's row of V to the next for blocks of nt tiles: nt + VW in whole
    cache lines (the input transform stores whole runs of VW tiles, see _input_tiles), and a line
    more where that is a multiple of 512 bytes. The GEMM reads a 16-column panel
    of V down its C rows; 512 tiles (2 KB) apart, those rows fell in 2 of the 64 sets of the Zen 3's
    L1 (8 ways), and the panel, read again for each 6-row tile of U, came from L2."""
    r = (nt + VW + 15) // 16 * 16
    return r + 16 if r % 128 == 0 else r


@njit(cache=True, error_model="numpy")
def _setup(x, u, b, out, res, ws):
    """The operands checked; (channels in, out, tiles a row, tiles, tiles a block)."""
    _check(x, u, b, out, res, ws)
    TW = (out.shape[4] + 1) // 2
    T = ((out.shape[3] + 1) // 2) * TW
    return x.shape[1], out.shape[1], TW, T, block_tiles(x.shape[1], out.shape[1], T)


@njit(cache=True, error_model="numpy")
def _views(ws, C, M, nt):
    """V (16, C, v_stride(nt)) (each row's first nt floats used) and M (16, M, nt) of a block of nt
    tiles, C-contiguous views of ws (typed as the other callers of gemm_implicit type theirs: no
    specialisations of its own to compile)."""
    r = v_stride(nt)
    return ws[:16 * C * r].reshape((16, C, r)), ws[16 * C * r:16 * (C * r + M * nt)].reshape((16, M, nt))


@njit(cache=True, error_model="numpy")
def _inputs(x, n, TW, t0, t1, c0, c1, pads_begin, v):
    """V[:, c, :t1 - t0] for the tiles t0 .. t1 of channels c0 .. c1 of image n (V's rows
    v.shape[2] floats apart)."""
    C, H, W, nt = x.shape[1], x.shape[3], x.shape[4], v.shape[2]
    for c in range(c0, c1):
        _input(x.ctypes.data + 4 * (n * C + c) * H * W, H, W, pads_begin[1], pads_begin[2], TW, t0, t1,
               v.ctypes.data + 4 * c * nt, C * nt)


@njit(cache=True, error_model="numpy")
def _gemms(u, v, mt, k0, k1):
    """M[xi] = U[xi] @ V[xi][:, :M's columns] for xi in k0 .. k1 (V's rows read in place)."""
    offs = np.arange(v.shape[1]) * v.shape[2]
    for k in range(k0, k1):
        gemm_implicit(u[k], v[k].reshape(-1), offs, mt[k], u[0, 0, :0], mt[0, :0], np.float32(-np.inf), np.float32(np.inf))


@njit(cache=True, error_model="numpy")
def _outputs(mt, b, out, n, TW, t0, t1, m0, m1, res, act, alpha, beta):
    """The tiles t0 .. t1 of out[n, m0 .. m1] from M, with the epilogue."""
    M, OH, OW, nt = out.shape[1], out.shape[3], out.shape[4], mt.shape[2]
    epi, lo, hi = vec_epilogue(act, alpha, beta)
    P = OH * OW
    for m in range(m0, m1):
        _output(mt.ctypes.data + 4 * m * nt, M * nt, TW, t0, t1, out.ctypes.data + 4 * (n * M + m) * P, OH, OW,
                res.ctypes.data + 4 * (n * M + m) * P if res.size > 0 else 0, b[m], lo, hi, epi)


@njit(cache=True, error_model="numpy")
def conv(x, u, b, out, pads_begin, res, act, alpha, beta, ws):
    """out = act(conv3x3(x) + b [+ res]) for a float32 2-D 3x3 stride-1 conv (x, out rank 5,
    act an nn.ACT_* code the epilogue applies), u = nn.winograd_weights of its filters, ws a
    float32 scratch of workspace(x.shape, out.shape) floats. Per image and block of tiles: the
    input transform, the 16 GEMMs, the output transform."""
    C, M, TW, T, Tb = _setup(x, u, b, out, res, ws)
    for n in range(x.shape[0]):
        for t0 in range(0, T, Tb):
            t1 = min(T, t0 + Tb)
            v, mt = _views(ws, C, M, t1 - t0)
            _inputs(x, n, TW, t0, t1, 0, C, pads_begin, v)
            _gemms(u, v, mt, 0, 16)
            _outputs(mt, b, out, n, TW, t0, t1, 0, M, res, act, alpha, beta)
    return x.size + u.size + b.size + res.size + out.size   # the operands stay alive through the calls


@njit(cache=True, error_model="numpy", parallel=True)
def conv_par(x, u, b, out, pads_begin, res, act, alpha, beta, ws, parts):
    """conv with each step of a block split `parts` ways: the input transform by channels, the
    16 GEMMs by xi (8 each on 2 threads), the output transform by output channels.

    Tried in session 19 and dropped: each thread taking its own part through all three steps (bands
    of tiles, or output channels with the input transformed by both threads), so that no step
    reads what the other thread wrote. Alone it beat this split where the VM's two vCPUs were in
    one of their slow stretches (an empty parallel loop 2.6-3.8 us instead of 1.6; this conv 2-2.7x
    slower there, 32 channels at 56x56 750-900 us against 330-480), but inside resnet18_half at 2
    threads, interleaved in one process, it was slower: 6.7 ms a call against 5.7 (bands alone 8.8)."""
    C, M, TW, T, Tb = _setup(x, u, b, out, res, ws)
    cc, cg, cm = chunk_count(parts, C), chunk_count(parts, 16), chunk_count(parts, M)
    for n in range(x.shape[0]):
        for t0 in range(0, T, Tb):
            t1 = min(T, t0 + Tb)
            v, mt = _views(ws, C, M, t1 - t0)
            # each step's chunks claimed, each thread its own first (share.py): a slow core does not hold the step
            nxt = counters(parts, cc)
            for p in prange(parts):
                c = next_chunk(nxt, p, parts, cc)
                while c >= 0:
                    _inputs(x, n, TW, t0, t1, c * C // cc, (c + 1) * C // cc, pads_begin, v)
                    c = next_chunk(nxt, p, parts, cc)
            nxt = counters(parts, cg)
            for p in prange(parts):
                c = next_chunk(nxt, p, parts, cg)
                while c >= 0:
                    _gemms(u, v, mt, c * 16 // cg, (c + 1) * 16 // cg)
                    c = next_chunk(nxt, p, parts, cg)
            nxt = counters(parts, cm)
            for p in prange(parts):
                c = next_chunk(nxt, p, parts, cm)
                while c >= 0:
                    _outputs(mt, b, out, n, TW, t0, t1, c * M // cm, (c + 1) * M // cm, res, act, alpha, beta)
                    c = next_chunk(nxt, p, parts, cm)
    return x.size + u.size + b.size + res.size + out.size
