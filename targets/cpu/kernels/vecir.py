"""Vector helpers for the LLVM-IR kernels (window3x3.py, winograd.py): rows of an NCHW plane read
and written as vectors of VW floats, with masked loads whose off lanes read as a given value
(the zero padding of a convolution) and masked stores for ragged ends; LLVM lowers the masks
to AVX-512 mask registers, AVX2 masked moves, or scalar code elsewhere."""
from llvmlite import ir
from numba.core import cgutils

from runtime.cache import target_features

# Whether masked vector accesses are cheap (AVX-512's mask registers). AVX2's masked moves are
# not, on AMD's Zen 3 above all its masked stores: Winograd's input transform, a mask built for
# every access and every store masked, took 0.18-0.32 ms for a block of 512 tiles of a 32-channel
# 56x56 conv, about 50 ns a run of 8 tiles; with plain accesses inside the plane (split_masks)
# and whole-run stores, 0.075 ms. Without cheap masks a masked store tests its mask and takes a
# plain store when every lane is on.
CHEAP_MASKS = "+avx512f" in target_features().split(",")

# The activation a kernel's epilogue applies in registers (nn maps its ACT_* codes onto these;
# the others run over the finished plane).
EPI_NONE, EPI_CLAMP, EPI_HARDSWISH = 0, 1, 2
EPI_MAX = 3    # not an epilogue: the window's taps combine as MaxPool's (Vec.max_tap), no weights
EPI_SILU = 4   # v * sigmoid(v), sigmoid as fastmath.sigmoid32 (conv_small.py)

# fastmath.sigmoid32's rational function (onnxruntime's MLAS constants): x * P(x^2) / Q(x^2)
_SIG_P = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03, 2.48287947061529e-01)
_SIG_Q = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
          1.16817656904453e-01, 9.93151921023180e-01)


def dispatch(builder, cases, emit):
    """emit(value) under an if/else chain over cases [(i1 flag, value), ...]; the last case's
    flag is ignored (its value is the else branch). Kernels emit one loop nest per variant
    (stride, residual, activation) this way, so no loop tests a flag per element."""
    (flag, value), rest = cases[0], cases[1:]
    if not rest:
        emit(value)
        return
    with builder.if_else(flag) as (yes, no):
        with yes:
            emit(value)
        with no:
            dispatch(builder, rest, emit)


class Vec:
    """IR builders for one kernel body with VW-float vectors; integers are of type idx (i64)."""

    def __init__(self, builder, VW, idx):
        self.b, self.VW, self.idx = builder, VW, idx
        self.f32, self.i32, i1 = ir.FloatType(), ir.IntType(32), ir.IntType(1)
        self.vec, self.ivec, self.mvec = (ir.VectorType(t, VW) for t in (self.f32, self.i32, i1))
        mod, vp = builder.module, self.vec.as_pointer()
        self._fma = cgutils.get_or_insert_function(mod, ir.FunctionType(self.vec, [self.vec] * 3), f"llvm.fma.v{VW}f32")
        self._mload = cgutils.get_or_insert_function(mod, ir.FunctionType(self.vec, [vp, self.i32, self.mvec, self.vec]),
                                                     f"llvm.masked.load.v{VW}f32.p0")
        self._mstore = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [self.vec, vp, self.i32, self.mvec]), f"llvm.masked.store.v{VW}f32.p0")
        self.lanes = ir.Constant(self.ivec, list(range(VW)))
        self.zero = self.fconst(0.0)

    def const(self, v):
        return ir.Constant(self.idx, v)

    def fconst(self, c):
        return ir.Constant(self.vec, [c] * self.VW)

    def splat(self, x):
        """x (a float, i32 or i1 scalar) in every lane."""
        vt = ir.VectorType(x.type, self.VW)
        undef = ir.Constant(vt, ir.Undefined)
        return self.b.shuffle_vector(self.b.insert_element(undef, x, ir.Constant(self.i32, 0)), undef,
                                     ir.Constant(self.ivec, [0] * self.VW))

    def fptr(self, address):
        """A float pointer from an integer address."""
        return self.b.inttoptr(address, self.f32.as_pointer())

    def inside(self, col, width):
        """Lanes whose column col + lane lies in [0, width) (col, width: idx integers; col may be < 0)."""
        b = self.b
        c = b.add(self.lanes, self.splat(b.trunc(col, self.i32)))
        return b.and_(b.icmp_signed(">=", c, ir.Constant(self.ivec, [0] * self.VW)),
                      b.icmp_signed("<", c, self.splat(b.trunc(width, self.i32))))

    def below(self, n):
        """Lanes < n (an idx integer)."""
        return self.b.icmp_signed("<", self.lanes, self.splat(self.b.trunc(n, self.i32)))

    def load(self, row, col, mask=None, fill=None):
        """row[col .. col + VW] (row: float pointer); lanes off in mask read as fill (default 0)."""
        p = self.b.bitcast(self.b.gep(row, [col]), self.vec.as_pointer())
        if mask is None:
            return self.b.load(p, align=4)
        return self.b.call(self._mload, [p, ir.Constant(self.i32, 4), mask, fill or self.zero])

    def store(self, v, row, col, mask=None):
        b = self.b
        p = b.bitcast(b.gep(row, [col]), self.vec.as_pointer())
        if mask is None:
            b.store(v, p, align=4)
        elif CHEAP_MASKS:
            b.call(self._mstore, [v, p, ir.Constant(self.i32, 4), mask])
        else:
            with b.if_else(self.all_on(mask), likely=True) as (full, part):
                with full:
                    b.store(v, p, align=4)
                with part:
                    b.call(self._mstore, [v, p, ir.Constant(self.i32, 4), mask])

    def split_masks(self, interior, emit):
        """emit(masked) for a block of accesses: once, masked, where masks are cheap; else twice,
        without masks where `interior` (an i1: every access of the block has all lanes on) and
        with them otherwise."""
        if CHEAP_MASKS:
            emit(True)
            return
        with self.b.if_else(interior, likely=True) as (plain, masked):
            with plain:
                emit(False)
            with masked:
                emit(True)

    def all_on(self, mask):
        """Whether every lane of mask is on (an i1)."""
        bits = ir.IntType(self.VW)
        return self.b.icmp_unsigned("==", self.b.bitcast(mask, bits), ir.Constant(bits, (1 << self.VW) - 1))

    def fma(self, a, x, acc):
        return self.b.call(self._fma, [a, x, acc])

    def evens(self, lo, hi):
        """Lanes 0, 2, 4, ... of the 2*VW lanes lo ++ hi (one shuffle)."""
        return self.b.shuffle_vector(lo, hi, ir.Constant(self.ivec, list(range(0, 2 * self.VW, 2))))

    def odds(self, lo, hi):
        return self.b.shuffle_vector(lo, hi, ir.Constant(self.ivec, list(range(1, 2 * self.VW, 2))))

    def interleave(self, a, c):
        """(a0 c0 a1 c1 ... for the first VW/2 lanes, the same for the rest): two vectors."""
        h = self.VW // 2
        lo = [x for j in range(h) for x in (j, self.VW + j)]
        hi = [x for j in range(h, self.VW) for x in (j, self.VW + j)]
        return (self.b.shuffle_vector(a, c, ir.Constant(self.ivec, lo)),
                self.b.shuffle_vector(a, c, ir.Constant(self.ivec, hi)))

    def clamp(self, v, lo_v, hi_v):
        """`lo if v < lo`, then `hi if v > hi` (NaN passes), as nn._clamp and the GEMM epilogue."""
        b = self.b
        v = b.select(b.fcmp_ordered("<", v, lo_v), lo_v, v)
        return b.select(b.fcmp_ordered(">", v, hi_v), hi_v, v)

    def epilogue(self, v, bias_v, res_v, epi, lo_v, hi_v):
        """act(v + bias [+ res]) for an EPI_* code: EPI_CLAMP clamps to [lo, hi], EPI_HARDSWISH is
        v * clamp(v * (1/6) + 1/2, 0, 1); res_v None: no residual."""
        b = self.b
        v = b.fadd(v, bias_v)
        if res_v is not None:
            v = b.fadd(v, res_v)
        if epi == EPI_CLAMP:
            return self.clamp(v, lo_v, hi_v)
        if epi == EPI_HARDSWISH:
            return b.fmul(v, self.clamp(b.fadd(b.fmul(v, self.fconst(1.0 / 6.0)), self.fconst(0.5)), self.zero, self.fconst(1.0)))
        if epi == EPI_SILU:
            return b.fmul(v, self.sigmoid(v))
        return v

    def sigmoid(self, v):
        """fastmath.sigmoid32 in vectors: x = v clamped to [-18, 18], x P(x^2) / Q(x^2) + 1/2
        clamped to [0, 1], the polynomials' multiply-adds fused (as logistic_rows32's contract)."""
        b = self.b
        x = self.clamp(v, self.fconst(-18.0), self.fconst(18.0))
        x2 = b.fmul(x, x)
        p, q = self.fconst(_SIG_P[0]), self.fconst(_SIG_Q[0])
        for c in _SIG_P[1:]:
            p = self.fma(p, x2, self.fconst(c))
        for c in _SIG_Q[1:]:
            q = self.fma(q, x2, self.fconst(c))
        return self.clamp(b.fadd(b.fdiv(b.fmul(p, x), q), self.fconst(0.5)), self.zero, self.fconst(1.0))

    def window_max(self, taps, valid):
        """MaxPool's rule over a window's taps (in order, with the masks of the lanes where each is
        inside the plane, None: all): the first tap inside is taken as it is, NaN too, a later
        one only if strictly greater, so the result is NaN where that first tap is and else
        the max of the others with NaNs skipped. Computed so: NaNs (and taps outside) as
        -inf into a tree of maxima, the first inside tap found by a chain of selects; a window
        with no tap inside gives 0 (nn.max_pool's rule)."""
        b = self.b
        ninf = self.fconst(float("-inf"))
        vals = []
        for t, m in zip(taps, valid):
            keep = b.fcmp_ordered("ord", t, t)
            vals.append(b.select(keep if m is None else b.and_(keep, m), t, ninf))
        while len(vals) > 1:
            vals = [b.select(b.fcmp_ordered(">", x, y), x, y) for x, y in zip(vals[::2], vals[1::2])] + vals[len(vals) // 2 * 2:]
        first, seen = taps[0], valid[0]
        if seen is not None:
            for t, m in zip(taps[:0:-1], valid[:0:-1]):    # the last select is the first tap's
                first = t if m is None else b.select(m, t, first)
            first = b.select(valid[0], taps[0], first)
            for m in valid[1:]:
                seen = None if (seen is None or m is None) else b.or_(seen, m)
        out = b.select(b.fcmp_unordered("uno", first, first), first, vals[0])
        return out if seen is None else b.select(seen, out, self.zero)


def transpose8x16(builder, rows):
    """8 vectors of 16 lanes -> 16 vectors of 8 (out[c][p] = rows[p][c]: a tile of 8 positions by
    16 channels into one vector of positions a channel, or back), as three rounds of two-vector
    shuffles (LLVM: one vpermt2ps each, 24 in all) and halves."""
    def shuf(a, b, idx):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), len(idx)), idx))

    # round 1: positions (2q, 2q + 1) interleaved: channels 0-7 (lo) and 8-15 (hi), element
    # (channel c mod 8, position t) at 2c + t
    r1 = []
    for q in range(4):
        a, b = rows[2 * q], rows[2 * q + 1]
        r1.append((shuf(a, b, [x for c in range(8) for x in (c, 16 + c)]),
                   shuf(a, b, [x for c in range(8, 16) for x in (c, 16 + c)])))
    # round 2: positions 0-3 and 4-7 of 4 channels each, element (channel c mod 4, position t) at 4c + t
    r2 = {}
    for half in range(2):
        for g in range(2):          # positions 0-3 (pairs 0, 1), 4-7 (pairs 2, 3)
            p, q = r1[2 * g][half], r1[2 * g + 1][half]
            for cg in range(2):     # channels 0-3, 4-7 of the half
                r2[half, g, cg] = shuf(p, q, [x for c in range(4 * cg, 4 * cg + 4) for x in (2 * c, 2 * c + 1, 16 + 2 * c, 17 + 2 * c)])
    # round 3: positions 0-7 of 2 channels a vector; then each channel's 8 positions as a half
    out = []
    for half in range(2):
        for cg in range(2):
            a, b = r2[half, 0, cg], r2[half, 1, cg]
            for pair in range(2):
                v = shuf(a, b, [x for c in (2 * pair, 2 * pair + 1) for x in (*range(4 * c, 4 * c + 4), *range(16 + 4 * c, 20 + 4 * c))])
                out += [shuf(v, v, list(range(8))), shuf(v, v, list(range(8, 16)))]
    return out


def _shuffle_to(builder, a, la, b, lb, want):
    """The vector whose lanes hold the labels `want`, taken from a (labels la) and b (lb)."""
    where = {lab: i for i, lab in enumerate(la)}
    where.update({lab: len(la) + i for i, lab in enumerate(lb)})
    mask = ir.Constant(ir.VectorType(ir.IntType(32), len(want)), [where[w] for w in want])
    return builder.shuffle_vector(a, b, mask), want


def transpose_rounds(builder, cur, halves):
    """Rounds of two-vector shuffles over vectors labelled (channel, column) per lane, rows 1, 2,
    4, ... apart meeting in round 0, 1, 2, ...: each pair keeps half its columns a vector and
    gathers the channels of both, until each vector holds one column (in each of `halves`
    independent 256-bit halves where the rows were joined in pairs)."""
    k = 0
    while len({lab[1] for lab in cur[0][1]}) > 1:
        step, nxt = 1 << k, []
        for base in range(0, len(cur), 2 * step):
            for i in range(base, base + step):
                (a, la), (b, lb) = cur[i], cur[i + step]
                group = len(la) // halves
                chans = sorted({c % group for c, _ in la + lb}) if halves > 1 else sorted({c for c, _ in la + lb})
                cols = sorted({l for c, l in la if c < group})
                for e in range(2):
                    part = cols[e * len(cols) // 2:(e + 1) * len(cols) // 2]
                    want = [(c + group * h, l) for h in range(halves) for l in part for c in chans]
                    nxt.append(_shuffle_to(builder, a, la, b, lb, want))
        cur, k = nxt, k + 1
    return [v for v, _ in sorted(cur, key=lambda vl: vl[1][0][1])]


def transpose_square(builder, rows):
    """n vectors of n lanes -> n (out[j][c] = rows[c][j]): log2(n) rounds of n two-vector
    shuffles (16x16 for dw_small's AVX-512 rows, 8x8 for AVX2's tiles and rows)."""
    return transpose_rounds(builder, [(r, [(c, l) for l in range(len(rows))]) for c, r in enumerate(rows)], 1)


def store_tile(V, H8, rows, bias, at_of, mask, o_base, r_base, with_res, epi, lo, hi):
    """A tile of 8 positions by VW channels (rows: one vector of V a position, padded to
    8) stored as NCHW rows of 8 positions a channel (H8's vectors; channel c at at_of(c), under
    mask) with epilogue(rows + bias [+ res]) (lo, hi: float scalars). Without a residual the
    epilogue runs before the transpose, on whole vectors (half the instructions); the residual
    comes in NCHW rows, so with one it runs after. conv_small.py and dw_small.py end so."""
    b = V.b
    if with_res:
        rows = [b.fadd(r, bias) for r in rows]
    else:
        rows = [V.epilogue(r, bias, None, epi, V.splat(lo), V.splat(hi)) for r in rows]
    for c, vec8 in enumerate((transpose8x16 if V.VW == 16 else transpose_square)(b, rows)):
        at = at_of(c)
        if with_res:
            vec8 = H8.epilogue(vec8, H8.fconst(-0.0), H8.load(r_base, at, mask), epi, H8.splat(lo), H8.splat(hi))
        H8.store(vec8, o_base, at, mask)
