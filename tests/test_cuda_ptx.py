"""Every CUDA kernel signature listed in a kernel library's SIGNATURES compiles to PTX for
sm_80 and sm_90, and the PTX assembles with ptxas. Kernels a library lists in NO_FMA (those
that must round like the CPU) contain no fused multiply-add.

Needs no GPU, only libNVVM: compilation runs in a subprocess without NUMBA_ENABLE_CUDASIM
(compile_ptx does not exist in the simulator, which the rest of the suite may enable).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

MODULES = ("linalg", "nn", "reduce", "indexing", "resize")
ROOT = Path(__file__).resolve().parents[1]
ARCHS = ((8, 0), (9, 0))

_SCRIPT = r"""
import importlib, json, sys
from numba import cuda
module, outdir, archs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    cuda.compile_ptx(lambda a: None, "void(float32[::1])", cc=(8, 0))
except Exception as e:  # no libNVVM on this machine
    print("NO_NVVM", type(e).__name__, e)
    sys.exit(3)
if not cuda.is_available():
    # A kernel's device functions are compiled for "the current device" (numba and
    # numba-cuda alike), which fails without a GPU: stand in a device of the target cc.
    dispatcher = sys.modules[type(cuda.jit(device=True)(lambda: None)).__module__]
    target = {"cc": (8, 0)}
    class _Device:
        @property
        def compute_capability(self):
            return target["cc"]
    dispatcher.get_current_device = lambda: _Device()
else:
    target = {}
lib = importlib.import_module("targets.cuda.kernels." + module)
files = []
for name, sigs in lib.SIGNATURES.items():
    for i, sig in enumerate(sigs):
        for cc in archs:
            target["cc"] = tuple(cc)
            ptx, _ = cuda.compile_ptx(getattr(lib, name).py_func, sig, cc=tuple(cc))
            if name in getattr(lib, "NO_FMA", ()) and "fma." in ptx:
                raise AssertionError(f"{name} {sig}: a product was fused into an FMA")
            path = "%s/%s_%d_sm%d%d.ptx" % (outdir, name, i, cc[0], cc[1])
            open(path, "w").write(ptx)
            files.append([path, "sm_%d%d" % tuple(cc), name, sig])
print(json.dumps(files))
"""


@pytest.mark.parametrize("module", MODULES)
def test_kernels_compile_to_ptx(module):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as outdir:
        res = subprocess.run([sys.executable, "-c", _SCRIPT, module, outdir, json.dumps(ARCHS)],
                             capture_output=True, text=True, env=env, cwd=ROOT)
        if res.returncode == 3:
            pytest.skip(f"libNVVM unavailable: {res.stdout.strip()}")
        assert res.returncode == 0, res.stderr[-4000:]
        files = json.loads(res.stdout.strip().splitlines()[-1])
        assert files, f"{module}.SIGNATURES is empty"
        ptxas = shutil.which("ptxas")
        if ptxas is None:
            print("ptxas not on PATH: PTX generated but not assembled")
            return
        for path, arch, name, sig in files:
            asm = subprocess.run([ptxas, f"-arch={arch}", path, "-o", os.devnull], capture_output=True, text=True)
            assert asm.returncode == 0, f"{name} {sig} {arch}: {asm.stderr[-2000:]}"
