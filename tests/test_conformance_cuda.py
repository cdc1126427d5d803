"""ONNX node cases in the committed CUDA pass list must still pass on target
"cuda": Numba's simulator in CI, the GPU with ONNXJIT_TEST_GPU=1.

The simulator runs kernels as Python threads; the cases it took longer than
SIM_BUDGET_S on (attention with grouped heads, mostly) are left to
`python -m tests.conformance --target cuda` and to GPU runs, unless
ONNXJIT_FULL_CONFORMANCE=1. Regenerate the list and the times with
`python -m tests.conformance --target cuda --write`."""
import json
import os

import pytest

from tests.conformance import HERE, pass_list, run_case

SIM_BUDGET_S = 3.0

PASSING = pass_list("cuda")
with open(os.path.join(HERE, "conformance_seconds_cuda.json")) as f:
    SECONDS = json.load(f)
FULL = os.environ.get("ONNXJIT_FULL_CONFORMANCE") == "1" or os.environ.get("ONNXJIT_TEST_GPU") == "1"
RUN = [n for n in PASSING if FULL or SECONDS.get(n, 0.0) <= SIM_BUDGET_S]


def test_pass_list_size(all_cases):
    known = [n for n in PASSING if n in all_cases]
    print(f"\n{len(known)} of {len(all_cases)} node cases are in the cuda pass list; {len(RUN)} run here")
    assert len(known) >= 600
    assert len([n for n in RUN if n in all_cases]) >= 500


@pytest.mark.parametrize("name", RUN)
def test_node_case(name, all_cases):
    if name not in all_cases:
        pytest.skip("case not in this onnx version")
    run_case(all_cases[name], target="cuda")
