"""Every kernel the CUDA target generates or reaches compiles to PTX for sm_80
and sm_90 and assembles with ptxas (where the CUDA toolkit is present).

The cases: for each op in the CUDA conformance pass list, the first passing
case that uses it, so every lowering and every scalar op is covered. The
dry run (tests/cuda_ptx_dryrun.py) needs libnvvm, not a GPU."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conformance import HERE, cases, pass_list


def covering_cases() -> list[str]:
    passing = pass_list("cuda")
    all_cases = cases()
    chosen, ops = [], set()
    for name in passing:
        if name not in all_cases:
            continue
        new = {n.op_type for n in all_cases[name].model.graph.node} - ops
        if new:
            ops |= new
            chosen.append(name)
    return chosen


def _has_nvvm() -> str | None:
    code = "from numba.cuda.cudadrv import nvvm; nvvm.NVVM()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"))
    return None if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]


def test_generated_kernels_compile_to_ptx(tmp_path):
    missing = _has_nvvm()
    if missing:
        pytest.skip(f"libnvvm unavailable: {missing}")
    names = covering_cases()
    proc = subprocess.run([sys.executable, "-m", "tests.cuda_ptx_dryrun", str(tmp_path), *names],
                          capture_output=True, text=True, cwd=os.path.dirname(HERE),
                          env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"), timeout=3000)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{len(names)} cases, {res['kernels']} distinct kernels, {len(res['ptx'])} PTX files")
    assert not res["failed"], "\n".join(res["failed"][:20])
    assert res["kernels"] >= len(names)
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        print("ptxas not on PATH: PTX compiled but not assembled")
        return
    for path in res["ptx"]:
        arch = "sm_" + path.rsplit(".sm", 1)[1].split(".")[0]
        out = subprocess.run([ptxas, f"-arch={arch}", path, "-o", os.devnull], capture_output=True, text=True)
        assert out.returncode == 0, f"{path}: {out.stderr[-2000:]}"
