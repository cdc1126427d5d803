"""kernels/share.py's claimed chunks: however the threads' claims interleave, every chunk is run
exactly once, each thread's own chunks first and in order."""
import numpy as np
import pytest

from targets.cpu.kernels import share


@pytest.mark.parametrize("parts,items", [(1, 5), (2, 56), (2, 3), (3, 7), (4, 100)])
def test_every_chunk_once_own_first(parts, items):
    rng = np.random.default_rng(parts * 100 + items)
    chunks = share.chunk_count(parts, items)
    assert parts <= chunks <= max(parts, items)
    nxt = share.counters(parts, chunks)
    claimed, by_thread, live = [], {p: [] for p in range(parts)}, list(range(parts))
    while live:                      # threads claiming in a random interleaving
        p = live[rng.integers(len(live))]
        c = share.next_chunk(nxt, p, parts, chunks)
        if c < 0:
            live.remove(p)
            continue
        claimed.append(c)
        by_thread[p].append(c)
    assert sorted(claimed) == list(range(chunks))
    for p, cs in by_thread.items():
        own = [c for c in cs if p * chunks // parts <= c < (p + 1) * chunks // parts]
        assert own == sorted(own) and cs[:len(own)] == own     # its own, in order, before any other's
