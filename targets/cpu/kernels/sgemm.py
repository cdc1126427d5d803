"""A float32 GEMM of our own: a register-tiled micro-kernel written in LLVM IR, and the
packing loops around it in Numba.

Why not only the BLAS: on a Zen 5 (AVX-512) machine neither MKL
(its non-Intel code path) nor scipy's OpenBLAS used the 512-bit units: single-threaded they
reached 45-100 GFLOPS on the suite's GEMMs (a ResNet 7x7 stem as 32x147x12544: MKL 2.66 ms,
OpenBLAS 1.92), while onnxruntime's MLAS ran that conv in 0.70 ms. This micro-kernel, an
8x32 tile of C held in 16 zmm registers through the whole K loop, runs at ~215 GFLOPS from L1
there; on AVX2 (tile_shape) it holds 6x16 in 12 ymm registers. The IR is plain LLVM vectors
(<W x float>, llvm.fma), so the same code retargets (AOT for aarch64 splits each vector
into NEON registers).

C (M x N) = A (M x K) @ B (K x N), every operand given as an address and element strides, so
one compiled copy serves every layout. Kernels call it by symbol name (SYMBOL, bound below,
like the BLAS in runtime/blas.py): a C callback compiled once, so its IR is not linked into and
optimised again with every kernel that multiplies (that cost 2 s of cold compile per caller).
K runs in even blocks of at most KC. A is read in place where its rows are contiguous (a
ragged last panel too: the tile takes its row count), else packed into MR-row panels. B is
always packed, NC columns at a time, into NR-column panels read along B's rows (see _pack_b).
Computing a small-N product transposed (C^T = B^T A^T, to vectorise along M) was tried and
was slower on every shape measured, even 640x160x49: its tiles all go through a scatter."""

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from runtime.cache import target_features

from .jit import callback, njit



def tile_shape(features: str):
    """(rows, vector width, vectors a row) of the C tile held in registers. 32 vector registers
    of 16 floats (AVX-512): 8 x 32, 16 accumulators. 16 of 8 (AVX2, the Zen 3 machine): 6 x 16,
    12 accumulators plus 2 B vectors and the A broadcast; the 8 x 32 tile there spilled its
    accumulators and ran at a third of the BLAS. Anything else (NEON's 32 x 4 floats; SSE)
    takes the AVX2 shape, which LLVM splits into 4-float halves."""
    if "+avx512f" in features.split(","):
        return 8, 16, 2
    return 6, 8, 2


MR, W, NV = tile_shape(target_features())   # rows of C a tile, floats a vector, vectors a row
NR = W * NV      # columns of C a tile: vector loads from B
KC = 256         # depth of one packed block of A (MR x 256 floats: 6-8 KB a panel)
NC = 128         # columns of B packed at a time (KC x 128 floats: 128 KB, in L2)


@intrinsic
def voidptr(typingctx, addr):
    """The address as a void pointer (for numba.carray)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.intp), codegen


@intrinsic
def copy_nr(typingctx, dst, src):
    """NR floats from address src to address dst, as NV vector loads and stores (a loop of
    Numba element copies stayed scalar: the arrays may alias and each index is checked)."""
    def codegen(context, builder, signature, args):
        vp = ir.VectorType(ir.FloatType(), W).as_pointer()
        d, s_ = (builder.inttoptr(x, ir.FloatType().as_pointer()) for x in args)
        for j in range(NV):
            off = [ir.Constant(args[0].type, W * j)]
            v = builder.load(builder.bitcast(builder.gep(s_, off), vp), align=4)
            builder.store(v, builder.bitcast(builder.gep(d, off), vp), align=4)
        return context.get_dummy_value()
    return types.void(types.intp, types.intp), codegen


@intrinsic
def _tile(typingctx, mr, ap, ars, aks, bp, bo, cp, ldc, kc, accum, bias, res, ldr, lo, hi):
    """C[0:mr, 0:NR] (+)= sum over k < kc of A[0:mr, k] (outer) B[k, 0:NR], then, where bias
    is not 0, the epilogue C = clamp(C + bias[r] [+ R], lo, hi) in registers (1 <= mr <= MR).

    ap: A's element (0, 0), element (r, k) at r * ars + k * aks floats from it (a packed
    panel: ars 1, aks MR; a row-major matrix read in place: ars its row length, aks 1);
    bp: a packed B panel (rows NR floats apart), or, where bo is not 0, B's row k at
    bp + bo[k] floats (bo: int64 offsets; an implicit-GEMM convolution's taps in its image);
    cp: C's first row, rows ldc floats apart;
    accum != 0 adds to C, else overwrites it. bias: the tile's mr row biases (0: no
    epilogue); res: R's first row, rows ldr apart (0: none); the clamp is `lo if v < lo`,
    then `hi if v > hi` (NaN passes, as in nn._clamp). Each row count has its own copy of the
    loop (a ragged last panel of A is read in place, not padded); its mr x NV accumulators
    are allocas that LLVM promotes to vector registers."""
    sig = types.void(*(types.intp,) * 13, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        fn = _tile_function(builder.module, [a.type for a in args])
        builder.call(fn, args)
        return context.get_dummy_value()

    return sig, codegen


def _tile_function(module, arg_types):
    """The tile's LLVM function, its body built once per module: the GEMM calls it from two
    places, and each inlined copy of its 8 row counts x 2 B modes x 3 stores cost ~1 s of LLVM."""
    fn = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), arg_types), "onnxjit_sgemm_tile")
    if not fn.is_declaration:
        return fn
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    _tile_body(builder, fn.args)
    builder.ret_void()
    return fn


def _tile_body(builder, args):
    """The IR of _tile (see there) into builder."""
    mr, ap_i, ars, aks, bp_i, bo_i, cp_i, ldc, kc, accum, bias_i, res_i, ldr, lo, hi = args
    f32 = ir.FloatType()
    vec = ir.VectorType(f32, W)
    i32 = ir.IntType(32)
    idx = ldc.type
    a_base = builder.inttoptr(ap_i, f32.as_pointer())
    b_base = builder.inttoptr(bp_i, f32.as_pointer())
    c_base = builder.inttoptr(cp_i, f32.as_pointer())
    bo_base = builder.inttoptr(bo_i, ir.IntType(64).as_pointer())
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{W}f32")
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, W), [0] * W)
    add = builder.icmp_signed("!=", accum, ir.Constant(accum.type, 0))
    zero = ir.Constant(idx, 0)

    def splat_of(x):
        return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, splat)

    def rows_block(rows, indirect):
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * W)) for _ in range(NV)]
                for _ in range(rows)]
        with cgutils.for_range(builder, kc) as loop:
            k = loop.index
            if indirect:
                b_row = builder.gep(b_base, [builder.load(builder.gep(bo_base, [k]))])
            else:
                b_row = builder.gep(b_base, [builder.mul(k, ir.Constant(idx, NR))])
            bs = [builder.load(builder.bitcast(builder.gep(b_row, [ir.Constant(idx, W * j)]), vec.as_pointer()),
                               align=4) for j in range(NV)]
            a_col = builder.gep(a_base, [builder.mul(k, aks)])
            for i in range(rows):
                av = splat_of(builder.load(builder.gep(a_col, [builder.mul(ars, ir.Constant(idx, i))])))
                for j in range(NV):
                    builder.store(builder.call(fma, [av, bs[j], builder.load(accs[i][j])]), accs[i][j])

        def store(with_bias, with_res):
            lo_v, hi_v = splat_of(lo), splat_of(hi)
            for i in range(rows):
                c_row = builder.gep(c_base, [builder.mul(ldc, ir.Constant(idx, i))])
                if with_bias:
                    b_v = splat_of(builder.load(builder.gep(builder.inttoptr(bias_i, f32.as_pointer()),
                                                            [ir.Constant(idx, i)])))
                if with_res:
                    r_row = builder.gep(builder.inttoptr(res_i, f32.as_pointer()),
                                        [builder.mul(ldr, ir.Constant(idx, i))])
                for j in range(NV):
                    p = builder.bitcast(builder.gep(c_row, [ir.Constant(idx, W * j)]), vec.as_pointer())
                    v = builder.load(accs[i][j])
                    v = builder.select(add, builder.fadd(builder.load(p, align=4), v), v)
                    if with_bias:
                        v = builder.fadd(v, b_v)
                        if with_res:
                            q = builder.bitcast(builder.gep(r_row, [ir.Constant(idx, W * j)]), vec.as_pointer())
                            v = builder.fadd(v, builder.load(q, align=4))
                        v = builder.select(builder.fcmp_ordered("<", v, lo_v), lo_v, v)
                        v = builder.select(builder.fcmp_ordered(">", v, hi_v), hi_v, v)
                    builder.store(v, p, align=4)

        with builder.if_else(builder.icmp_signed("!=", bias_i, zero)) as (epilogue, plain):
            with epilogue:
                with builder.if_else(builder.icmp_signed("!=", res_i, zero)) as (with_res, no_res):
                    with with_res:
                        store(True, True)
                    with no_res:
                        store(True, False)
            with plain:
                store(False, False)

    for rows in range(1, MR + 1):
        with builder.if_then(builder.icmp_signed("==", mr, ir.Constant(idx, rows))):
            with builder.if_else(builder.icmp_signed("!=", bo_i, zero)) as (indirect, packed):
                with indirect:
                    rows_block(rows, True)
                with packed:
                    rows_block(rows, False)


@njit(cache=True, error_model="numpy")
def _extent(rows, cols, s0, s1):
    return (rows - 1) * s0 + (cols - 1) * s1 + 1


@njit(cache=True, error_model="numpy")
def _pack_a(A, sa0, sa1, M, k0, kc, ap):
    """ap[i, k, r] = A[i*MR + r, k0 + k] for the rows below M (the tile reads no further)."""
    for i in range(ap.shape[0]):
        for r in range(min(MR, M - i * MR)):
            base = (i * MR + r) * sa0 + k0 * sa1
            for k in range(kc):
                ap[i, k, r] = A[base + k * sa1]


@njit(cache=True, error_model="numpy")
def _pack_b(B, b, sb0, sb1, k0, kc, j0, nc, bp):
    """bp[p, k, j] = B[k0 + k, j0 + p*NR + j] for the nc columns from j0, zero past them (b:
    B's address): NR-column panels the tile reads with rows NR floats apart. B's rows are read along
    their length (whole cache lines, in order); reading a panel in place, its rows ldb apart,
    put every row of a 1024-column B in one L1 set (4 KB apart) and ran 128x256x1024 at 42
    GFLOPS against 67 packed on the Zen 3."""
    panels = (nc + NR - 1) // NR
    flat = bp.reshape(bp.size)   # flat indices: a view a row cost an atomic refcount pair (2.8 GB/s)
    ps = bp.shape[1] * NR        # floats a panel
    if sb0 == 1:     # B's columns contiguous (B is a transposed view): read along k
        for j in range(nc):
            base = k0 + (j0 + j) * sb1
            d = (j // NR) * ps + j % NR
            for k in range(kc):
                flat[d + k * NR] = B[base + k]
    else:
        for k in range(kc):
            base = (k0 + k) * sb0 + j0 * sb1
            for p in range(panels):
                d = p * ps + k * NR
                c0 = p * NR
                if sb1 == 1 and c0 + NR <= nc:
                    copy_nr(bp.ctypes.data + 4 * d, b + 4 * (base + c0))
                else:
                    for j in range(min(NR, nc - c0)):
                        flat[d + j] = B[base + (c0 + j) * sb1]
    for j in range(nc, panels * NR):
        d = (j // NR) * ps + j % NR
        for k in range(kc):
            flat[d + k * NR] = 0


@njit(cache=True, error_model="numpy")
def _pack_rows(b, boffs, k0, kc, j0, nr, bt):
    """bt[k, j] = B[k0 + k, j0 + j] for j < nr, zero to NR, where B's row k is at b + boffs[k]
    floats: the indirect mode's ragged last panel."""
    offs = carray(voidptr(boffs + 8 * k0), kc, np.int64)
    for k in range(kc):
        row = carray(voidptr(b + 4 * (offs[k] + j0)), nr, np.float32)
        d = bt[k * NR:(k + 1) * NR]
        for j in range(nr):
            d[j] = row[j]
        for j in range(nr, NR):
            d[j] = 0


def pack_panels(b: np.ndarray) -> np.ndarray:
    """A constant B (K x N) in the layout the tile reads, for compile time: NR-column panels
    (the last zero-padded), each K x NR and contiguous, one after another (panel p, row k at
    (p*K + k) * NR floats). onnxruntime packs constant MatMul weights once at session start;
    packing them on every call cost us 10-20% of a weight GEMM read from L3."""
    k, n = b.shape
    panels = (n + NR - 1) // NR
    padded = np.zeros((k, panels * NR), np.float32)
    padded[:, :n] = b
    return np.ascontiguousarray(padded.reshape(k, panels, NR).transpose(1, 0, 2)).reshape(-1)


@njit(cache=True, error_model="numpy", inline="always")
def clamp(v, lo, hi):
    """`lo if v < lo`, then `hi if v > hi` (NaN passes): the GEMM epilogues' clamp, as nn._clamp's
    and the micro-kernel's (Relu is lo 0, hi inf; no activation -inf, inf)."""
    v = lo if v < lo else v
    return hi if v > hi else v


@njit(cache=True, error_model="numpy", inline="always")
def _epilogue_value(v, bias, res, lo, hi):
    """nn._epilogue's order for the ragged tiles the micro-kernel does not store itself."""
    return clamp((v + bias) + res, lo, hi)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot(a, b):
    """sum of a[k] * b[k], reassociated: LLVM's vector accumulators (contiguous views: indexing
    at base + k stayed scalar, 7x slower)."""
    s = np.float32(0)
    for k in range(a.size):
        s += a[k] * b[k]
    return s


_I = types.intp
TAIL_SYMBOL = "onnxjit_sgemm_tail_v1"
TAIL_SIGNATURE = types.void(*(_I,) * 14, types.float32, types.float32)


@callback(TAIL_SYMBOL, TAIL_SIGNATURE, error_model="numpy")
def tail_columns(M, N, K, a, sa0, b, sb0, sb1, boffs, c, ldc, bias, res, ldr, lo, hi):
    """sgemm's last N % NR columns of C (sgemm's arguments; A's rows in place, sa1 == 1), each
    a dot product of every row of A with B's column gathered once; the epilogue where bias is
    not 0. A callback of its own: inlined into sgemm it cost 2 s of sgemm's cold compile.
    Its gathers are its own too: packing the columns with _pack_rows / _pack_b, then
    transposing them, cost another 0.5-1 s of it."""
    A = carray(voidptr(a), _extent(M, K, sa0, 1), np.float32)
    C = carray(voidptr(c), _extent(M, N, ldc, 1), np.float32)
    Bias = carray(voidptr(bias), M if bias != 0 else 0, np.float32)
    R = carray(voidptr(res), _extent(M, N, ldr, 1) if res != 0 else 0, np.float32)
    epi, has_res = bias != 0, res != 0
    tail = N % NR
    j0 = N - tail
    bc = np.empty((tail, K), np.float32)
    if boffs != 0:
        offs = carray(voidptr(boffs), K, np.int64)
        for k in range(K):
            row = carray(voidptr(b + 4 * (offs[k] + j0)), tail, np.float32)
            for j in range(tail):
                bc[j, k] = row[j]
    elif sb0 < 0:     # pack_panels' layout: the last panel, column j of each row
        last = carray(voidptr(b + 4 * (j0 // NR) * K * NR), K * NR, np.float32)
        for k in range(K):
            for j in range(tail):
                bc[j, k] = last[k * NR + j]
    else:
        B = carray(voidptr(b), _extent(K, N, sb0, sb1), np.float32)
        for k in range(K):
            for j in range(tail):
                bc[j, k] = B[k * sb0 + (j0 + j) * sb1]
    for m in range(M):
        for j in range(tail):
            v = _dot(A[m * sa0:m * sa0 + K], bc[j])
            if epi:
                v = _epilogue_value(v, Bias[m], R[m * ldr + j0 + j] if has_res else 0, lo, hi)
            C[m * ldc + j0 + j] = v


_tail_call = types.ExternalFunction(TAIL_SYMBOL, TAIL_SIGNATURE)
SYMBOL = "onnxjit_own_sgemm_v3"   # the ABI version: code cached against another fails to link, not crash
SIGNATURE = types.void(*(_I,) * 15, types.float32, types.float32)


@callback(SYMBOL, SIGNATURE, error_model="numpy")
def sgemm(M, N, K, a, sa0, sa1, b, sb0, sb1, boffs, c, ldc, bias, res, ldr, lo, hi):
    """Row-major C (M x N, rows ldc floats apart) = A @ B, the operands as addresses and
    non-negative element strides; where bias is not 0, C = clamp(C + bias[row] [+ R], lo, hi)
    (R at res, rows ldr apart, where res is not 0). B is one of three: strided (sb0, sb1 >= 0);
    as pack_panels laid it out (sb0 < 0); or, where boffs is not 0, B[k, j] = b[boffs[k] + j]
    (boffs: K int64 offsets; the implicit GEMM of a convolution, B never built: the tile reads
    its rows from the image, NR floats at a time; a ragged last panel is packed, so nothing is
    read past column N)."""
    A = carray(voidptr(a), _extent(M, K, sa0, sa1), np.float32)
    indirect = boffs != 0
    prepacked = sb0 < 0
    B = carray(voidptr(b), _extent(K, N, sb0, sb1) if not (prepacked or indirect) else 0, np.float32)
    C = carray(voidptr(c), _extent(M, N, ldc, 1), np.float32)
    Bias = carray(voidptr(bias), M if bias != 0 else 0, np.float32)
    R = carray(voidptr(res), _extent(M, N, ldr, 1) if res != 0 else 0, np.float32)
    panels = (M + MR - 1) // MR
    # Row-major A is read in place (a ragged last panel too: the tile takes its row count);
    # packing it cost a small-N product most of its time (256x2304x49: its 2.4 MB read and
    # written again for 49 columns). K runs in even blocks of at most KC (288 as 256 + 32
    # left a block too short to pay for its C reload).
    packed = sa1 != 1
    kb = (K + (K + KC - 1) // KC - 1) // ((K + KC - 1) // KC)
    small_n = N <= NC
    if small_n and (prepacked or indirect) and not packed:
        # few B panels, all of K at hand and A in place: each tile runs the whole K at once, A
        # read along its rows (256x2304x61, a 7x7 conv's 2.4 MB of weights from L3: 94 GFLOPS
        # in blocks of 256, where the 8 rows' 1 KB runs left the prefetcher behind)
        kb = K
    n_j = (N + NR - 1) // NR
    tail = N % NR
    if tail != 0 and tail * (K // 16 + 16) < K and not packed:
        # a last panel of a few columns (a 7x7 plane's 49th, a 14x14's last 4) costs a whole
        # tile, ~K cycles a row of A, a quarter of a 7x7 pointwise conv: as dot products along
        # A's rows instead, ~K/16 + 16 cycles a column (short rows: the vector loop's scalar
        # remainder; 48x288 at 14x14 went 74 -> 79 us)
        _tail_call(M, N, K, a, sa0, b, sb0, sb1, boffs, c, ldc, bias, res, ldr, lo, hi)
        n_j -= 1
        N -= tail
    bpk = np.empty(n_j * K * NR if small_n and indirect else 0, np.float32)
    if bpk.size > 0:
        # a small-N implicit GEMM's B packed whole: its rows (one a channel plane, N floats apart)
        # read in place split every 64-byte load across two lines, and past ~256 rows a tile's
        # strip no longer fits L1 (7x7 pointwise convs 7-13% faster on the Zen 3)
        for jj in range(n_j):
            _pack_rows(b, boffs, 0, K, jj * NR, min(NR, N - jj * NR), bpk[jj * K * NR:(jj + 1) * K * NR])
        b, boffs, indirect, prepacked = bpk.ctypes.data, 0, False, True
    ap = np.empty((panels if packed else 1, kb, MR), np.float32)
    bp = np.empty((max(1, (min(N, NC) + NR - 1) // NR) if not (prepacked or indirect) else 1, kb, NR), np.float32)
    ct = np.empty((MR, NR), np.float32)
    bt = np.empty(kb * NR if indirect else 0, np.float32)
    for k0 in range(0, K, kb):
        kc = min(kb, K - k0)
        if packed:
            _pack_a(A, sa0, sa1, M, k0, kc, ap)
        accum = 1 if k0 > 0 else 0
        epi = bias if k0 + kb >= K else 0
        bo = 0
        if small_n and not (prepacked or indirect):
            _pack_b(B, b, sb0, sb1, k0, kc, 0, N, bp)
        if indirect and N % NR != 0:     # the ragged last panel, packed: its rows end where B's do
            _pack_rows(b, boffs, k0, kc, n_j * NR - NR, N % NR, bt)
        for t in range(n_j * panels):
            # small N: each A panel against every B panel while it is in L1
            i, jj = (t // n_j, t % n_j) if small_n else (t % panels, t // panels)
            j0 = jj * NR
            nr = min(NR, N - j0)
            if indirect:
                pb, bo = (b + 4 * j0, boffs + 8 * k0) if nr == NR else (bt.ctypes.data, 0)
            elif prepacked:
                pb = b + 4 * (jj * K + k0) * NR
            else:
                jb = j0 % NC
                if jb == 0 and i == 0 and not small_n:
                    _pack_b(B, b, sb0, sb1, k0, kc, j0, min(NC, N - j0), bp)
                pb = bp.ctypes.data + 4 * (jb // NR) * kb * NR
            i0 = i * MR
            mr = min(MR, M - i0)
            if packed:
                pa, ars, aks = ap.ctypes.data + 4 * i * kb * MR, 1, MR
            else:
                pa, ars, aks = a + 4 * (i0 * sa0 + k0), sa0, 1
            if nr == NR:
                _tile(mr, pa, ars, aks, pb, bo, c + 4 * (i0 * ldc + j0), ldc, kc, accum,
                      epi + 4 * i0 if epi != 0 else 0, res + 4 * (i0 * ldr + j0) if epi != 0 and res != 0 else 0,
                      ldr, lo, hi)
                continue
            # a ragged tile: through ct
            if accum:
                for r in range(mr):
                    for j in range(nr):
                        ct[r, j] = C[(i0 + r) * ldc + j0 + j]
            _tile(mr, pa, ars, aks, pb, bo, ct.ctypes.data, NR, kc, accum, 0, 0, 0, lo, hi)
            for r in range(mr):
                for j in range(nr):
                    v = ct[r, j]
                    if epi != 0:
                        v = _epilogue_value(v, Bias[i0 + r], R[(i0 + r) * ldr + j0 + j] if res != 0 else 0, lo, hi)
                    C[(i0 + r) * ldc + j0 + j] = v
    # the scratch arrays are read through addresses Numba cannot see: a use here (a store, which
    # no dead-code pass removes) keeps them alive until every tile has run
    ct[0, 0] = ap[0, 0, 0] + bp[0, 0, 0] + (bt[0] if indirect else 0) + (bpk[0] if bpk.size > 0 else 0)
