"""CPU lowerings: one function per op that emits lines of the graph function.

Each lowering gets the IR node and the Emitter; sizes are the IR's concrete
shapes, rendered through targets.cpu.source so no model text enters the code."""
from __future__ import annotations

import numpy as np

from compiler.ops import reduce as reduce_ops
from compiler.ops import shape as shape_ops
from compiler.ops.common import attr, axis
from compiler.ir import Node
from compiler.registry import DOMAINS, STD, domain_key

from . import elementwise, source
from .emitter import Emitter
from .kernels import blas, gemv_acc, sgemm
from .kernels import reduce as reduce_kernels

LOWER: dict = {}   # standard ops by name, other domains by (domain, name)


def lower(*ops, domain=STD):
    domain = domain_key(domain)
    def deco(fn):
        for op in ops:
            LOWER[op if domain == STD else (domain, op)] = fn
            if op in DOMAINS[domain]:
                DOMAINS[domain][op].lower["cpu"] = fn
        return fn
    return deco


def lowering_of(node, table=None):
    """The lowering of `node` in `table` (this target's LOWER by default); ops of
    other domains are keyed (domain, op)."""
    domain = domain_key(node.domain)
    return (LOWER if table is None else table).get(node.op if domain == STD else (domain, node.op))


LOWER["Fused"] = elementwise.lower_fused


def transpose_into(em, src: str, shape, perm, dst: str):
    """Emit dst[...] = transpose(src, perm) as a loop kernel (Numba compiles
    np.ascontiguousarray of a transposed view ~20x slower than this)."""
    rank = len(perm)
    src_idx = [""] * rank
    for d, p in enumerate(perm):
        src_idx[p] = f"i{d}"
    k = em.loop_kernel("out, a", "out", rank, [f"out[{', '.join(f'i{d}' for d in range(rank))}] = a[{', '.join(src_idx)}]"])
    em.launch(k, int(np.prod(shape, dtype=np.int64)), [dst, src])


def transposed(em, name: str, shape, perm) -> str:
    """A fresh contiguous array holding transpose(name, perm)."""
    t = em.tmp()
    out_shape = tuple(shape[p] for p in perm)
    em.emit(f"{t} = {em.EMPTY}({source.ints(out_shape)}, {name}.dtype)")
    transpose_into(em, name, shape, perm, t)
    return t


def _rows_view(em, x, axes_last):
    """x with `axes_last` moved to the end, as a contiguous (rows, n) view."""
    rank = len(x.shape)
    rest = [a for a in range(rank) if a not in axes_last]
    perm = rest + list(axes_last)
    name = em[x]
    if perm != list(range(rank)):
        name = transposed(em, name, x.shape, perm)
    n = int(np.prod([x.shape[a] for a in axes_last], dtype=np.int64))
    rows = int(np.prod([x.shape[a] for a in rest], dtype=np.int64))
    return f"{name}.reshape({source.ints((rows, n))})", perm, rows, n


@lower("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(node: Node, em: Emitter):
    out = node.outputs[0]
    em.define(out, f"{em[node.inputs[0]]}.reshape({source.ints(out.shape)})", alias=True)


@lower("BitCast")
def _bitcast(node: Node, em: Emitter):
    """A view: held types (targets/cpu/half.py) are bits already, so any pair of one width works."""
    x, out = node.inputs[0], node.outputs[0]
    em.define(out, f"{em[x]}.reshape({x.size}).view({source.dtype_name(out.dtype)}).reshape({source.ints(out.shape)})",
              alias=True)


@lower("Transpose")
def _transpose(node, em):
    perm = shape_ops.transpose_perm(node)
    res = em.alloc(node.outputs[0])
    transpose_into(em, em[node.inputs[0]], node.inputs[0].shape, perm, res)


@lower("Concat")
def _concat(node, em):
    """Each input copied into its window of the output's buffer."""
    out = node.outputs[0]
    a = axis(attr(node, "axis"), len(out.shape))
    res, off = em.alloc(out), 0
    for v in node.inputs:
        if v is not None and v.shape[a]:
            em.emit(f"{res}[{'::, ' * a}{off}:{off + v.shape[a]}] = {em[v]}")
            off += v.shape[a]


def _slice_text(slices) -> str:
    parts = []
    for s in slices:
        parts.append(":".join("" if x is None else repr(int(x)) for x in (s.start, s.stop, s.step)))
    return ", ".join(parts)


def _copy_slice(em, x, slices, out):
    """`out` = x[slices], written into a buffer of its own (the memory planner may place it)."""
    em.emit(f"{em.alloc(out)}[...] = {em[x]}[{_slice_text(slices)}]")


@lower("Slice")
def _slice(node, em):
    _copy_slice(em, node.inputs[0], shape_ops.python_slices(node), node.outputs[0])


@lower("Split")
def _split(node, em):
    for v, sl in shape_ops.split_slices(node):
        _copy_slice(em, node.inputs[0], sl, v)


@lower("Expand")
def _expand(node, em):
    body = Node("Identity", [node.inputs[0]], node.outputs, {})
    elementwise.lower_fused(Node("Fused", [node.inputs[0]], node.outputs, {"body": [body]}), em)


@lower("Dropout")
def _dropout(node, em):
    """Dropout is the identity unless it trains with a nonzero ratio, which needs
    a random generator we do not have: refused at compile time when the ratio
    and mode are constants, else checked at run time."""
    ratio, training = node.input(1), node.input(2)
    if training is not None and (training.const is None or bool(training.const)):
        if ratio is None or ratio.const is not None:
            if ratio is None or float(ratio.const) != 0.0:
                if training.const is not None:
                    raise NotImplementedError("Dropout in training mode (random) is not supported")
                em.emit(f"if {em[training]}.reshape(1)[0]:")
                em.emit("    raise ValueError('Dropout in training mode (random) is not supported')")
        else:
            cond = "True" if training.const is not None else f"{em[training]}.reshape(1)[0]"
            em.emit(f"if {cond} and {em[ratio]}.reshape(1)[0] != 0:")
            em.emit("    raise ValueError('Dropout in training mode (random) is not supported')")
    em.define(node.outputs[0], em[node.inputs[0]], alias=True)
    if len(node.outputs) > 1:
        em.bind_const(node.outputs[1], np.ones(node.outputs[1].shape, np.bool_))


@lower("DepthToSpace", "SpaceToDepth")
def _depth_space(node, em):
    n, c, h, w = node.inputs[0].shape
    b = attr(node, "blocksize")
    if node.op == "DepthToSpace":
        if attr(node, "mode", "DCR") == "DCR":
            mid, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
        else:
            mid, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
    else:
        mid = (n, c, h // b, b, w // b, b)
        perm = (0, 3, 5, 1, 2, 4) if attr(node, "mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    x = em[node.inputs[0]]
    out = node.outputs[0]
    t = transposed(em, f"{x}.reshape({source.ints(mid)})", mid, perm)
    em.define(out, f"{t}.reshape({source.ints(out.shape)})")


def broadcast_copy(em, name: str, shape, to_shape, dtype) -> str:
    """A fresh array of `to_shape` holding `name` (of `shape`) broadcast, as Tile does."""
    rank = len(to_shape)
    a = f"{name}.reshape({source.ints((1,) * (rank - len(shape)) + tuple(shape))})"
    t = em.tmp()
    em.emit(f"{t} = {em.empty(to_shape, dtype)}")
    tile_into(em, a, t, rank, int(np.prod(to_shape, dtype=np.int64)))
    return t


def tile_into(em, src: str, dst: str, rank: int, size: int):
    idx = ", ".join(f"i{d}" for d in range(rank))
    at = ", ".join(f"i{d} % a.shape[{d}]" for d in range(rank))
    k = em.loop_kernel("out, a", "out", rank, [f"out[{idx}] = a[{at}]"])
    em.launch(k, size, [dst, src])


@lower("Tile")
def _tile(node, em):
    x, out = node.inputs[0], node.outputs[0]
    rank = len(out.shape)
    if rank == 0:
        em.define(out, em.copy_expr(em[x]))
        return
    tile_into(em, em[x], em.alloc(out), rank, out.size)


PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


@lower("Pad")
def _pad(node, em):
    x, out = node.inputs[0], node.outputs[0]
    mode = attr(node, "mode", "constant")
    if mode not in PAD_MODES:
        raise NotImplementedError(f"Pad mode {mode!r}")
    before, _ = shape_ops.pad_amounts(node)
    rank = len(out.shape)
    value = node.input(2)
    body = []
    for d in range(rank):
        body.append(f"j{d} = i{d} - before[{d}]")
        n = f"a.shape[{d}]"
        if mode == "reflect":
            body += [f"if {n} > 1:", f"    p = 2 * ({n} - 1)", f"    j{d} = j{d} % p",
                     f"    j{d} = p - j{d} if j{d} >= {n} else j{d}", "else:", f"    j{d} = 0"]
        elif mode == "edge":
            body.append(f"j{d} = min(max(j{d}, 0), {n} - 1)")
        elif mode == "wrap":
            body.append(f"j{d} = j{d} % {n}")
    idx = ", ".join(f"i{d}" for d in range(rank))
    src = ", ".join(f"j{d}" for d in range(rank))
    if mode == "constant":
        inside = " and ".join(f"0 <= j{d} < a.shape[{d}]" for d in range(rank)) or "True"
        body.append(f"out[{idx}] = a[{src}] if {inside} else value[0]")
    else:
        body.append(f"out[{idx}] = a[{src}]")
    k = em.loop_kernel("out, a, before, value", "out", rank, body)
    res = em.alloc(out)
    val = f"{em[value]}.reshape(1)" if value is not None else em.const(np.zeros(1, x.dtype))
    em.launch(k, out.size, [res, em[x], em.const(np.asarray(before, np.int64)), val])


def _lowest(dtype):
    return False if dtype == np.bool_ else -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype):
    return True if dtype == np.bool_ else np.inf if dtype.kind == "f" else np.iinfo(dtype).max


EMPTY_EXTREMES = {"ReduceMax": _lowest, "ReduceMin": _highest}   # the value of an empty reduction


@lower(*reduce_ops.REDUCE_OPS)
def _reduce(node, em):
    x, out = node.inputs[0], node.outputs[0]
    ax = reduce_ops.reduce_axes(node)
    if not ax:
        em.define(out, em.copy_expr(em[x]))
        return
    view, _, rows, n = _rows_view(em, x, ax)
    if n == 0 and node.op in EMPTY_EXTREMES:    # the kernels' -inf/+inf is no identity for ints and bools
        em.define(out, em.copy_expr(em.const(np.full(out.shape, EMPTY_EXTREMES[node.op](out.dtype), out.dtype))))
        return
    fn = node.op[len("Reduce"):].lower() + "_rows"
    if fn == "sum_rows" and x.dtype.kind in "iub":
        fn = "int_sum_rows"
    assert hasattr(reduce_kernels, fn), fn
    L = em.lib("reduce")
    res = em.alloc(out)
    em.emit(f"{L}.{fn}({view}, {res}.reshape({rows}))")


@lower("Softmax", "LogSoftmax", "Hardmax")
def _softmax(node, em):
    a, coerce = reduce_ops.softmax_axis(node)
    kind = {"Softmax": 0, "LogSoftmax": 1, "Hardmax": 2}[node.op]
    L = em.lib("reduce")
    x = node.inputs[0]
    n = int(np.prod(x.shape[a:] if coerce else x.shape[a:a + 1], dtype=np.int64))
    parts = split_parts(em, x.size // max(n, 1), x.size * (2 + elementwise.HEAVY_COST))
    if parts > 1:
        call = lambda i, o: f"{L}.softmax_rows_par({i}, {o}, {kind}, {parts})"   # noqa: E731
    else:
        call = lambda i, o: f"{L}.softmax_rows({i}, {o}, {kind})"   # noqa: E731
    along_axis(em, x, node.outputs[0], a, coerce, call)


@lower("LpNormalization")
def _lp_normalization(node, em):
    p = reduce_ops.lp_norm_p(node)
    L = em.lib("reduce")
    a = axis(attr(node, "axis", -1), len(node.inputs[0].shape))
    along_axis(em, node.inputs[0], node.outputs[0], a, False, lambda i, o: f"{L}.lp_normalize_rows({i}, {o}, {p})")


def along_axis(em, x, out, a, coerce, call):
    """Emit `call(in_rows, out_rows)`, a row kernel on (rows, n) views with axis `a`
    last (moved there and back by transposes); `coerce` flattens at `a` instead."""
    rank = len(x.shape)
    if coerce:
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        view, perm = f"{em[x]}.reshape({source.ints((rows, x.size // max(rows, 1)))})", list(range(rank))
    else:
        view, perm, rows, _ = _rows_view(em, x, (a,))
    rows_n = source.ints((rows, x.size // max(rows, 1)))
    res = em.alloc(out)
    if perm == list(range(rank)):
        em.emit(call(view, f"{res}.reshape({rows_n})"))
        return
    t = em.tmp()
    em.emit(f"{t} = {em.empty(tuple(x.shape[p] for p in perm), out.dtype)}")
    em.emit(call(view, f"{t}.reshape({rows_n})"))
    transpose_into(em, t, tuple(x.shape[p] for p in perm), [int(i) for i in np.argsort(perm)], res)


@lower("LayerNormalization")
def _layernorm(node, em):
    x, out = node.inputs[0], node.outputs[0]
    a = axis(attr(node, "axis", -1), len(x.shape))
    rows = int(np.prod(x.shape[:a], dtype=np.int64))
    n = x.size // max(rows, 1)

    def param(v, fill):
        if v is None:
            return em.const(np.full(n, fill, x.dtype))
        if v.const is not None:
            return em.const(np.broadcast_to(v.const, x.shape[a:]).reshape(n))
        name = em[v] if v.size == n else broadcast_copy(em, em[v], v.shape, x.shape[a:], v.dtype)
        return f"{name}.reshape({n})"
    L = em.lib("reduce")
    res = em.alloc(out)
    stats = []
    for i in (1, 2):
        if len(node.outputs) > i:
            stats.append(em.alloc(node.outputs[i]) + f".reshape({rows})")
        else:
            t = em.tmp()
            em.emit(f"{t} = {em.empty((rows,), np.float32)}")
            stats.append(t)
    eps = source.num(attr(node, "epsilon", 1e-5))
    parts = split_parts(em, rows, x.size * 6)
    fn, tail = ("layernorm_rows_par", f", {parts}") if parts > 1 else ("layernorm_rows", "")
    em.emit(f"{L}.{fn}({em[x]}.reshape({source.ints((rows, n))}), {param(node.input(1), 1)}, "
            f"{param(node.input(2), 0)}, {res}.reshape({source.ints((rows, n))}), {stats[0]}, {stats[1]}, {eps}{tail})")


GEMV_MIN_N = 64   # a single row through gemv: ~30% faster than gemm from 512 columns, no gain at 10


def split_parts(em, rows: int, work: int) -> int:
    """How many bands of rows, one per thread, a row kernel doing `work` element-ops
    is split into (its *_par variant); 1 keeps it serial."""
    if em.threads < 2 or work < elementwise.PARALLEL_MIN_WORK:
        return 1
    return max(1, min(em.threads, rows))


PARALLEL_GEMM_MACS = 1 << 19    # multiply-adds (~10 us): below this a GEMM runs on one thread (waking the other costs ~5 us)
PARALLEL_GEMM_ROWS = 16         # rows per thread, at least
PARALLEL_GEMM_COLUMNS = 64      # columns per thread from which a GEMM splits by columns (gemm_col_bands), not rows


def gemm_parts(em, m: int, k: int, n: int, min_macs: int = PARALLEL_GEMM_MACS,
               min_rows: int = PARALLEL_GEMM_ROWS) -> int:
    """How many row bands (one per thread) an (m, k) x (k, n) GEMM is split into:
    1 (serial) under `min_macs` multiply-adds or `min_rows` rows a thread."""
    if m * k * n < min_macs:
        return 1
    return max(1, min(em.threads, m // min_rows))


# A row times a matrix of this many elements or more is split by columns (gemm_cols; a
# constant one in bands of gemv_acc's packing: gemv_packed_par): the
# bench MLP's 784x512 and 512x512 layers (2.7 MB of weights with the last) ran ~3x faster
# on 2 threads in onnxruntime, each core's 2 MB L2 then holding its half of them.
PARALLEL_GEMV_ELEMENTS = 1 << 17
PARALLEL_GEMV_COLUMNS = 64      # columns per thread, at least


def gemv_parts(em, k: int, n: int) -> int:
    """How many bands of the n columns (one per thread) a (k,) x (k, n) product is split into: the
    band rule of gemm_parts with the columns as its rows."""
    return gemm_parts(em, n, k, 1, PARALLEL_GEMV_ELEMENTS, PARALLEL_GEMV_COLUMNS)


def _packs(m: int, k: int, n: int) -> bool:
    """Whether a float32 GEMM by a constant takes the weight packed at compile time: the
    shapes blas.gemm sends to our own kernel."""
    return m >= blas.OWN_MIN_M and n >= blas.OWN_MIN_N and k > 0


def matmul_shapes(a, b):
    """(a's shape, b's shape, batch shape) with 1-D operands made matrices, as numpy does."""
    a2 = (1,) + a.shape if len(a.shape) == 1 else a.shape
    b2 = b.shape + (1,) if len(b.shape) == 1 else b.shape
    return a2, b2, tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))


def matmul_operands(em, a, b, out_name: str):
    """Batched (batch, m, k) x (batch, k, n) views of a MatMul's operands and output,
    with the index arrays that broadcast the batch dims: (a3, b3, out3, a_index, b_index)."""
    a2, b2, batch = matmul_shapes(a, b)
    m, k, n = a2[-2], a2[-1], b2[-1]
    nb = int(np.prod(batch, dtype=np.int64))
    a_idx = np.broadcast_to(np.arange(int(np.prod(a2[:-2], dtype=np.int64))).reshape(a2[:-2]), batch).reshape(-1)
    b_idx = np.broadcast_to(np.arange(int(np.prod(b2[:-2], dtype=np.int64))).reshape(b2[:-2]), batch).reshape(-1)
    return (f"{em[a]}.reshape({source.ints((a_idx.max() + 1 if a_idx.size else 1, m, k))})",
            f"{em[b]}.reshape({source.ints((b_idx.max() + 1 if b_idx.size else 1, k, n))})",
            f"{out_name}.reshape({source.ints((nb, m, n))})",
            em.const(a_idx.astype(np.int64)), em.const(b_idx.astype(np.int64)))


@lower("MatMul")
def _matmul(node, em):
    a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
    a2, b2, batch = matmul_shapes(a, b)
    m, k, n = a2[-2], a2[-1], b2[-1]
    nb = int(np.prod(batch, dtype=np.int64))
    res = em.alloc(out)
    if out.dtype == np.float32 and b.const is not None and len(b2) == 2 and nb * m == 1:
        # one row by a constant: the weight travels packed for gemv_acc's kernel, in a band a thread
        parts = gemv_parts(em, k, n)
        bp, tail, bands = (em.const(c) for c in gemv_acc.pack_bands(np.asarray(b.const).reshape(k, n), parts))
        args = f"{em[a]}.reshape({k}), {bp}, {tail}, {res}.reshape({n}), {bands}"
        em.emit(f"{em.lib('linalg')}.gemv_packed{'_par' if parts > 1 else ''}({args})")
        return
    if out.dtype.kind == "f" and len(b2) == 2 and nb * m == 1 and n >= GEMV_MIN_N:   # one row: BLAS gemv
        args = f"{em[a]}.reshape({k}), {em[b]}.reshape({source.ints((k, n))}), {res}.reshape({n})"
        parts = gemv_parts(em, k, n)
        em.emit(f"{em.lib('linalg')}.gemm_cols({args}, {parts})" if parts > 1 else f"{em.lib('linalg')}.gemm({args})")
        return
    if out.dtype.kind == "f" and len(b2) == 2:        # one big GEMM: fold the batch into rows
        parts = gemm_parts(em, nb * m, k, n)
        by_cols = n >= PARALLEL_GEMM_COLUMNS * parts
        if out.dtype == np.float32 and b.const is not None and (parts == 1 or by_cols) and _packs(nb * m, k, n):
            # only the packed copy travels: em[b] would add the weight a second time
            rhs, fn = em.const(sgemm.pack_panels(np.asarray(b.const).reshape(k, n))), "gemm_packed"
        else:
            rhs, fn = f"{em[b]}.reshape({source.ints((k, n))})", "gemm"
        if parts > 1:
            fn = f"{fn}_col_bands" if by_cols else "gemm_rows"
        args = f"{em[a]}.reshape({source.ints((nb * m, k))}), {rhs}, {res}.reshape({source.ints((nb * m, n))})"
        em.emit(f"{em.lib('linalg')}.{fn}({args}{f', {parts}' if parts > 1 else ''})")
        return
    matmul_batched(em, a, b, res)


def matmul_batched(em, a, b, res: str):
    """res = a @ b batch by batch (the linalg library); broadcast batches pick their operand by index."""
    fn = "matmul_batched" if np.dtype(a.dtype).kind == "f" else "matmul_batched_int"
    a2, b2, batch = matmul_shapes(a, b)
    nb = int(np.prod(batch, dtype=np.int64))
    if fn == "matmul_batched" and nb > 1 and split_parts(em, nb, nb * a2[-2] * a2[-1] * b2[-1] >> 4) > 1:
        fn = "matmul_batched_par"
    em.emit(f"{em.lib('linalg')}.{fn}({', '.join(matmul_operands(em, a, b, res))})")


@lower("Det")
def _det(node, em):
    x, out = node.inputs[0], node.outputs[0]
    n = x.shape[-1]
    res = em.alloc(out)
    em.emit(f"{em.lib('linalg')}.det_batched({em[x]}.reshape({source.ints((out.size, n, n))}), {res}.reshape({out.size}))")
