"""The on-disk cache: generated modules, constants and a manifest per
specialisation, each file checked by its sha256 before it is trusted."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import mmap
import os
import py_compile
import sys
import tempfile
import threading

import numpy as np

from .arena import ALIGN, aligned_bytes

RUNTIME_VERSION = "0.1.0"
_lock = threading.Lock()


def default_dir() -> str:
    env = os.environ.get("ONNXJIT_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "onnxjit")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def target_cpu() -> str:
    """The CPU code is generated for, by LLVM's name: NUMBA_CPU_NAME when set (an AOT build for
    another machine), else the host's. The kernels choose their paths by it (targets/cpu)."""
    from llvmlite import binding
    return os.environ.get("NUMBA_CPU_NAME") or binding.get_host_cpu_name()


def target_features() -> str:
    """The CPU features code is generated for: NUMBA_CPU_FEATURES when set, else the host's."""
    from llvmlite import binding
    return os.environ.get("NUMBA_CPU_FEATURES") or binding.get_host_cpu_features().flatten()


def environment_key() -> dict:
    """Everything outside the model that changes the generated machine code."""
    import llvmlite
    import numba
    return {"onnxjit": RUNTIME_VERSION, "numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0], "cpu": target_cpu(),
            "features": target_features()}


def model_key(model_bytes: bytes, target: str, options: dict) -> str:
    blob = json.dumps({"model": sha256(model_bytes), "target": target, "options": options,
                       "env": environment_key()}, sort_keys=True)
    return sha256(blob.encode())[:32]


def _atomic_write(path: str, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Cache:
    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root or default_dir())
        self.src = os.path.join(self.root, "src")

    def entry_path(self, key: str, spec: str) -> str:
        return os.path.join(self.root, "models", key, spec + ".json")

    # writing -----------------------------------------------------------------
    def store(self, key: str, spec: str, program: dict) -> dict:
        """Write a built program; returns its manifest."""
        files, bytecode = {}, {}
        module = "onnxjit_g_" + sha256(program["source"].encode())[:24]
        for name, text in [(module, program["source"])] + sorted(program["libs"].items()):
            data = text.encode()
            path = os.path.join(self.src, name + ".py")
            files[name] = sha256(data)
            if not (os.path.exists(path) and _sha_file(path) == files[name]):
                _atomic_write(path, data)
            bytecode[name] = _write_bytecode(path)
        consts_path = os.path.join(self.root, "models", key, spec + ".bin")
        buf, layout = _pack(program["consts"])
        _atomic_write(consts_path, buf)
        manifest = {"module": module, "files": files, "bytecode": bytecode, "consts": os.path.basename(consts_path),
                    "consts_sha256": sha256(buf), "consts_layout": layout, "args": program["args"],
                    "device": program.get("device", "host"),
                    "views": program.get("views", []), "arena": program.get("arena")}
        _atomic_write(self.entry_path(key, spec), json.dumps(manifest, indent=1).encode())
        return manifest

    # reading -----------------------------------------------------------------
    def lookup(self, key: str, spec: str):
        """(manifest, consts) if a complete, uncorrupted entry exists, else None."""
        path = self.entry_path(key, spec)
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as f:
                manifest = json.loads(f.read())
            for name, digest in manifest["files"].items():
                if _sha_file(os.path.join(self.src, name + ".py")) != digest:
                    return None
            for name, digest in manifest.get("bytecode", {}).items():
                if not _check_bytecode(os.path.join(self.src, name + ".py"), digest):
                    return None
            consts_path = os.path.join(os.path.dirname(path), manifest["consts"])
            consts = _unpack(consts_path, manifest["consts_layout"], manifest["consts_sha256"])
            if consts is None:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return manifest, consts

    def import_graph(self, manifest: dict):
        """Import the generated module (Numba then loads its own cache) and return `graph`."""
        with _lock:
            if self.src not in sys.path:
                sys.path.insert(0, self.src)
            importlib.invalidate_caches()
            module = importlib.import_module(manifest["module"])
        return module.graph


def _write_bytecode(path: str) -> str | None:
    """The module's bytecode beside it, even where PYTHONDONTWRITEBYTECODE keeps imports from
    writing it (compiling a model's 16 modules from source took 0.16 s of each warm load); its
    sha256 for the manifest. Python checks it against the source's mtime and size, as for any
    import; _check_bytecode checks its contents."""
    pyc = importlib.util.cache_from_source(path)
    try:
        fresh = os.path.getmtime(pyc) >= os.path.getmtime(path)
    except OSError:
        fresh = False
    if not fresh:
        py_compile.compile(path, cfile=pyc, doraise=False, quiet=2)
    return _sha_file(pyc)


def _check_bytecode(path: str, digest: str | None) -> bool:
    """Removes the module's bytecode unless it is the one the manifest names: the import then
    compiles the source, whose sha256 lookup has checked (a corrupt .pyc is never run). False
    where a wrong one stays (a read-only cache): the entry is not loaded."""
    pyc = importlib.util.cache_from_source(path)
    if digest is not None and _sha_file(pyc) == digest:
        return True
    try:
        os.remove(pyc)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _sha_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return sha256(f.read())
    except OSError:
        return None


def _pack(arrays) -> tuple[bytes, list]:
    """The constants as one flat blob (each array 64-byte aligned) and their
    (dtype, shape, offset): loading is one read and zero-copy views, no zip."""
    layout, parts, offset = [], [], 0
    for a in arrays:
        a = np.asarray(a)
        pad = -offset % ALIGN
        parts.append(b"\0" * pad)
        offset += pad
        layout.append([a.dtype.str, list(a.shape), offset])
        parts.append(a.tobytes())
        offset += a.nbytes
    return b"".join(parts), layout


def _unpack(path: str, layout: list, digest: str):
    """The arrays of a blob written by _pack, or None if it is not the one the manifest names.

    The file is mapped copy-on-write, not read: its pages come from the page cache (shared by
    every process that loads the model) instead of a fresh buffer's faults and a copy, which
    took 0.28 s of light_resnet50's 0.87 s warm load (100 MB of weights). Writable (private
    pages), so Numba types the arrays as it did at build time; page-aligned, so _pack's offsets
    are aligned in memory too (a bytearray starts 16 bytes into a cache line: the LSTM's
    weights read that way ran 150 us a call against 113 aligned). _atomic_write replaces a
    file, never rewrites it, so a mapping keeps the blob it hashed."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) if size else aligned_bytes(0)
    if hashlib.sha256(buf).hexdigest() != digest:
        return None
    out = []
    for dt, shape, offset in layout:
        dt = np.dtype(dt)
        n = int(np.prod(shape, dtype=np.int64))
        if offset + n * dt.itemsize > size:
            return None
        out.append(np.frombuffer(buf, dt, n, offset).reshape(shape))
    return out
