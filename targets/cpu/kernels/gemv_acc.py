"""g += h @ B for a float32 vector h (K) and a constant B (K x N) packed at compile time, with
the columns of g held in vector registers while all K rows of B stream past: one load of B
per multiply-add and g read and written once.

Why: an LSTM step is such a product (h @ R^T, 128 x 512 on the bench LSTM, 256 KB of weights
read from L2 each of its 32 steps). The Numba loop before (eight rows of B per pass over g)
loaded and stored g once every eight rows and spent 2.8 us a step where the weights' bytes
alone take about half that.

Packing (pack): the columns in chunks of 16, then 4, then 1 vectors of VW floats (N padded
with zeros to a multiple of VW); a chunk of c vectors is K rows of c*VW floats, contiguous, so
each chunk streams through memory in order."""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import njit
from .sgemm import W as VW
from .vecir import Vec

CHUNKS = (16, 4, 1)     # vectors a chunk, widest first: 16 accumulators leave registers to spare


@njit(cache=True, error_model="numpy", callbacks=False)
def padded(n):
    """N rounded up to whole vectors: the length of g the kernel writes."""
    return -(-n // VW) * VW


@njit(cache=True, error_model="numpy", callbacks=False)
def pack(b):
    """B (K x N) in the kernel's layout, flat float32: at compile time for a constant, at run
    time (once a call) for one that is not."""
    K, N = b.shape
    out = np.zeros(K * padded(N), np.float32)
    off, col, left = 0, 0, padded(N) // VW
    for c in CHUNKS:
        w = c * VW
        while left >= c:
            for k in range(K):
                for j in range(min(w, N - col)):
                    out[off + k * w + j] = b[k, col + j]
            off, col, left = off + K * w, col + w, left - c
    return out


@intrinsic
def _accumulate(typingctx, bp, hp, gp, K, NP):
    """g[0:NP] += h[0:K] @ B at addresses bp (pack's layout), hp, gp; NP = padded(N)."""
    sig = types.void(types.intp, types.intp, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        bp_i, hp_i, gp_i, K, NP = args
        V = Vec(builder, VW, K.type)
        const = V.const
        b_base, h_base, g_base = V.fptr(bp_i), V.fptr(hp_i), V.fptr(gp_i)
        accs = [cgutils.alloca_once(builder, V.vec) for _ in range(max(CHUNKS))]
        col = cgutils.alloca_once_value(builder, const(0))       # first column of the chunk
        off = cgutils.alloca_once_value(builder, const(0))       # its offset in the packing

        def chunk_loop(c):
            """Chunks of c vectors while at least c vectors of columns are left."""
            cond = builder.append_basic_block("chunk_cond")
            body = builder.append_basic_block("chunk_body")
            done = builder.append_basic_block("chunk_done")
            builder.branch(cond)
            builder.position_at_end(cond)
            c0 = builder.load(col)
            builder.cbranch(builder.icmp_signed("<=", builder.add(c0, const(c * VW)), NP), body, done)
            builder.position_at_end(body)
            for i in range(c):
                builder.store(V.load(g_base, builder.add(c0, const(i * VW))), accs[i])
            base = builder.gep(b_base, [builder.load(off)])
            with cgutils.for_range(builder, K) as loop:
                hk = V.splat(builder.load(builder.gep(h_base, [loop.index])))
                row = builder.gep(base, [builder.mul(loop.index, const(c * VW))])
                for i in range(c):
                    builder.store(V.fma(hk, V.load(row, const(i * VW)), builder.load(accs[i])), accs[i])
            for i in range(c):
                V.store(builder.load(accs[i]), g_base, builder.add(c0, const(i * VW)))
            builder.store(builder.add(c0, const(c * VW)), col)
            builder.store(builder.add(builder.load(off), builder.mul(K, const(c * VW))), off)
            builder.branch(cond)
            builder.position_at_end(done)

        for c in CHUNKS:
            chunk_loop(c)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, error_model="numpy", inline="always")
def accumulate(bp, h, g):
    """g += h @ B, B as pack laid it out (bp); h float32 (K,), g float32 of padded(N) (checked:
    the kernel reads and writes them unchecked)."""
    K, NP = h.shape[0], g.shape[0]
    if (bp.size != K * NP or h.itemsize != 4 or g.itemsize != 4 or bp.itemsize != 4
            or (K > 1 and h.strides[0] != 4) or (NP > 1 and g.strides[0] != 4)):
        raise ValueError("gemv_acc: the packing, h and g do not match")
    _accumulate(bp.ctypes.data, h.ctypes.data, g.ctypes.data, K, NP)


def pack_bands(b, parts: int):
    """A constant B (K x N) for linalg.gemv_packed at compile time: its whole vectors of
    columns cut into `parts` bands as even as whole vectors allow, each band packed (pack)
    and the packings laid end to end, so each thread streams one contiguous run; the last
    N mod VW columns as they are (K x N mod VW), for tail. Returns (packed, tail columns,
    bands (parts, 3) int64: first column, end column, packing offset)."""
    b = np.ascontiguousarray(b, dtype=np.float32)
    K, N = b.shape
    vectors = N // VW
    cuts = [p * vectors // parts * VW for p in range(parts + 1)]
    bands = np.array([(lo, hi, K * lo) for lo, hi in zip(cuts, cuts[1:])], np.int64).reshape(parts, 3)
    packed = np.concatenate([pack(b[:, lo:hi]) for lo, hi in zip(cuts, cuts[1:])])   # parts >= 1 bands
    return packed, np.ascontiguousarray(b[:, cuts[-1]:]), bands


@intrinsic
def _fma32(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma), as the kernel's vector lanes compute it."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32] * 3), "llvm.fma.f32")
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, error_model="numpy")
def tail(t, h, g):
    """g = h @ T for the few columns T (K x r, r < VW) that fill no vector, with the kernel's
    arithmetic in each column: one fused multiply-add a row, rows in order from zero. So every
    column of a product is rounded alike: a softmax over logits in the thousands, all equal
    in the light models' weights, turned the 8 columns left over from 1000 (dot products,
    summed in another order) into the only nonzero outputs."""
    r = t.shape[1]
    g[:r] = 0
    for k in range(t.shape[0]):
        hk = np.float32(h[k])
        for j in range(r):
            g[j] = _fma32(hk, t[k, j], g[j])
