"""Numba's disk cache made safe for processes that share a cache directory.

Numba saves a new overload by reading the index, taking the first data-file number
the index does not use, writing the index and then the data. Two processes saving
into one index at once (pytest-xdist workers, a server's worker processes, two
models compiled side by side) both take the same number: the index can end up
naming one function's or signature's machine code for another, and every later
process loads it without a check (numba issue #4807). Seen here: the symbolic
ReduceLogSum cases returned the plain sum in one parallel test run, kernels/reduce.py
making its row reductions as closures that share one index file.

`install()` replaces IndexDataCacheFile.save: under an exclusive lock on the index
(fcntl, where the platform has it), the data goes first to a file named by a random
token, which no other writer can pick, and then the index names it."""
from __future__ import annotations

import contextlib
import os
import pickle
import uuid

try:
    import fcntl
except ImportError:     # no advisory locks (Windows): unique data names still keep entries apart
    fcntl = None


CAN_LOCK = fcntl is not None


@contextlib.contextmanager
def locked(path: str, wait: bool = True):
    """Yields True while this process holds an exclusive flock on `path` (waiting for it if
    `wait`), False if another holds it and not `wait`; True, unlocked, where there is no fcntl.
    The kernel drops the lock when its holder exits or dies."""
    if fcntl is None:
        yield True
        return
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _stale_data_files(cache_file) -> list[str]:
    """The data files an out-of-date index of this Numba version names (its source changed)."""
    try:
        with open(cache_file._index_path, "rb") as f:
            if pickle.load(f) != cache_file._version:
                return []
            _, overloads = pickle.loads(f.read())
        return list(overloads.values())
    except Exception:   # noqa: BLE001 -- an unreadable index names nothing we can trust
        return []


def _save(self, key, data):
    """IndexDataCacheFile.save, one writer at a time and never into another entry's file."""
    with locked(self._index_path + ".lock"):
        overloads = self._load_index()
        old = overloads.get(key)
        drop = [] if overloads else _stale_data_files(self)
        name = f"{self._index_name[:-len('.nbi')]}.{uuid.uuid4().hex[:16]}.nbc"
        self._save_data(name, data)
        overloads[key] = name
        self._save_index(overloads)
        for stale in drop + ([old] if old else []):
            with contextlib.suppress(OSError):
                os.remove(self._data_path(stale))


def install() -> None:
    """Patch Numba's cache file class once per process (idempotent)."""
    from numba.core import caching
    if caching.IndexDataCacheFile.save is not _save:
        caching.IndexDataCacheFile.save = _save
