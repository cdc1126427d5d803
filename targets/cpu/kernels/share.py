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

# Planes of at most this many positions split among threads by output channels, larger ones by
# rows (pointwise.conv_par; conv_small.rows_first): two threads' rows of a 7x7 or 14x14 plane
# share cache lines of every output channel, and rows cut a 7x7 plane's 49 columns into 21 + 28,
# each with a ragged tile. Zen 3, pointwise.conv_par, 2 threads, medians interleaved in one
# process, us (rows -> channels): 160 -> 640 at 7x7 110 -> 73, 480 -> 160 79 -> 64, 80 -> 480
# 55 -> 35, 480 -> 80 46 -> 36; at 14x14 48 -> 288 75 -> 66, 32 -> 192 55 -> 48, 288 -> 48
# 65 -> 61; but at 28x28 96 -> 16 32 -> 35, 16 -> 96 36 -> 43. The session-24 Xeon,
# conv_small.conv_par, us (rows -> panels): 80 -> 480 at 7x7 32.3 -> 21.4 (one thread 31.9),
# 48 -> 288 at 14x14 37.6 -> 27.2; at 28x28 16 -> 96 even (21.4, 21.0).
CHANNEL_SPLIT_MAX = 196


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
