"""Parallel loops whose chunks the threads claim, each its own first: a thread that finishes its
share takes the chunks another has not started, so one slow core does not hold the whole loop
(OpenMP's static split waits for it at the barrier). The chunks and their order are a static
split's (each thread's own in order), so caches see what they did; only the leftovers move.

Why: on this 2-vCPU VM a busy or throttled vCPU made our 2-thread runs as slow as one thread
(resnet18_half 4.4 -> 8.6 ms in a bench run) while onnxruntime, whose pool hands out work
dynamically, lost ~10-15%. With OpenMP's threads bound to the two cores and a process busy half
the time on the second: conv_small's 256 -> 256 3x3 conv at 7x7 static 376 / 342 us, claimed in
4 chunks a thread 334 / 334 (quiet: 269, 270); resnet18_half 13.7 / 9.0 ms static, 8.7 / 8.5
claimed (about its one-thread time: the free core does the work the busy one does not start).
Quiet, Winograd's conv_par at 2 threads, 32@56, 64@28, 128@14 channels: 313 / 242 / 269 us
static, 307 / 235 / 266 claimed (a second round 297 / 231 / 252 against 267 / 196 / 225)."""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import njit

CHUNKS_A_THREAD = 4


@intrinsic
def _fetch_add(typingctx, counters, i):
    """counters[i] += 1 as one atomic step (int64 array); its value before."""
    sig = types.int64(counters, i)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        return builder.atomic_rmw("add", ptr, ir.Constant(ir.IntType(64), 1), "seq_cst")

    return sig, codegen


@njit(cache=True, error_model="numpy")
def counters(parts, chunks):
    """Each thread's next chunk: thread q owns chunks q * chunks // parts .. (q + 1) * chunks // parts."""
    nxt = np.empty(parts, np.int64)
    for q in range(parts):
        nxt[q] = q * chunks // parts
    return nxt


@njit(cache=True, error_model="numpy")
def next_chunk(nxt, p, parts, chunks):
    """Thread p's next chunk: its own in order, then the others' unclaimed ones; -1 when none is left."""
    for d in range(parts):
        q = (p + d) % parts
        c = _fetch_add(nxt, q)
        if c < (q + 1) * chunks // parts:
            return c
    return -1


@njit(cache=True, error_model="numpy")
def chunk_count(parts, items):
    """Chunks to share `items` work items among `parts` threads: CHUNKS_A_THREAD each, at most one an item."""
    return max(parts, min(items, parts * CHUNKS_A_THREAD))
