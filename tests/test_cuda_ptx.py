"""The CUDA kernel libraries compile to PTX for sm_80 and sm_90, and ptxas accepts it.

The simulator runs kernels as Python, so it never shows a kernel that numba cannot type or
NVVM cannot compile. This test compiles every SIGNATURES entry of each library with
numba.cuda.compile_ptx in a subprocess WITHOUT the simulator (it needs libnvvm, not a GPU),
then runs ptxas when it is on PATH.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = ("reduce",)
CCS = ((8, 0), (9, 0))
ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "targets" / "cuda" / "kernels"

# Run in a fresh interpreter: imports the library from its file (as the runtime does, under
# another name), compiles each signature for each cc, writes <kernel>.<i>.sm<cc>.ptx.
_SCRIPT = r"""
import importlib.util, json, sys
from numba import cuda
try:
    from numba.cuda.cudadrv import nvvm
    nvvm.NVVM()
except Exception as e:  # noqa: BLE001
    print(json.dumps({"no_nvvm": repr(e)}))
    sys.exit(0)
import numba.cuda.dispatcher as dispatcher

class _Device:  # device functions ask the current device for its cc; there may be no GPU
    compute_capability = None

if hasattr(dispatcher, "get_current_device"):
    dispatcher.get_current_device = lambda: _Device
path, out_dir, ccs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.util.spec_from_file_location("cuda_kernels_under_test", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
done, failed = [], []
for name, sigs in mod.SIGNATURES.items():
    for i, sig in enumerate(sigs):
        for cc in ccs:
            _Device.compute_capability = tuple(cc)
            try:
                ptx, _ = cuda.compile_ptx(getattr(mod, name).py_func, sig, cc=tuple(cc))
            except Exception as e:  # noqa: BLE001
                failed.append(f"{name} {sig} sm_{cc[0]}{cc[1]}: {type(e).__name__}: {str(e)[:2000]}")
                continue
            f = f"{out_dir}/{name}.{i}.sm{cc[0]}{cc[1]}.ptx"
            open(f, "w").write(ptx)
            done.append(f)
print(json.dumps({"done": done, "failed": failed}))
"""


def _compile(module: str, tmp_path: Path) -> dict:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(KERNELS / f"{module}.py"), str(tmp_path),
                           json.dumps(CCS)], capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_ptx_compiles_and_assembles(module, tmp_path):
    res = _compile(module, tmp_path)
    if "no_nvvm" in res:
        pytest.skip(f"libnvvm unavailable: {res['no_nvvm']}")
    assert not res["failed"], "\n".join(res["failed"])
    assert res["done"]
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        print("ptxas not on PATH: PTX compiled but not assembled")
        return
    bad = []
    for f in res["done"]:
        arch = "sm_" + f.rsplit(".sm", 1)[1][:-len(".ptx")]
        p = subprocess.run([ptxas, f"-arch={arch}", f, "-o", os.devnull], capture_output=True, text=True)
        if p.returncode:
            bad.append(f"{Path(f).name}: {p.stderr[-2000:]}")
    assert not bad, "\n".join(bad)
