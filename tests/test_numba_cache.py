"""Numba's disk cache shared by processes saving at once (runtime/numba_cache.py):
every entry keeps its own data, none is lost. Numba's own save, run the same way
here (session 19), lost ~120 of the 300 entries and gave ~9 another key's data."""
import multiprocessing
import os

import pytest

N_KEYS = 150
BASE = "mod.kernel-15.py311"   # one index shared by both writers, as closures from one line share it


def _saver(cache_dir, who, start):
    from numba.core import caching
    from runtime import numba_cache
    numba_cache.install()
    f = caching.IndexDataCacheFile(cache_dir, BASE, ("stamp", 1))
    start.wait()
    for i in range(N_KEYS):
        f.save((who, i), {"who": who, "i": i, "pad": b"x" * 2000})


@pytest.mark.skipif(os.name != "posix", reason="fork and fcntl locks")
def test_concurrent_saves_keep_every_entry(tmp_path):
    from numba.core import caching
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_saver, args=(str(tmp_path), w, start)) for w in "ab"]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    f = caching.IndexDataCacheFile(str(tmp_path), BASE, ("stamp", 1))
    for who in "ab":
        for i in range(N_KEYS):
            got = f.load((who, i))
            assert got is not None, f"entry {(who, i)} lost"
            assert (got["who"], got["i"]) == (who, i), f"entry {(who, i)} holds {(got['who'], got['i'])}'s data"
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".nbc")]) == 2 * N_KEYS   # none left over


def test_stale_index_files_are_removed(tmp_path):
    """A changed source resets the index: the files it named go, the new entry stays."""
    from numba.core import caching
    from runtime import numba_cache
    numba_cache.install()
    old = caching.IndexDataCacheFile(str(tmp_path), BASE, ("stamp", 1))
    old.save("k", 1)
    old.save("k", 2)          # a key saved again replaces its file
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".nbc")]) == 1
    new = caching.IndexDataCacheFile(str(tmp_path), BASE, ("stamp", 2))
    assert new.load("k") is None
    new.save("k", 3)
    assert new.load("k") == 3 and old.load("k") is None
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".nbc")]) == 1
