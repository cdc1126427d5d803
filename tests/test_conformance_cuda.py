"""ONNX node cases in the committed CUDA pass list must still pass on target
"cuda": Numba's simulator in CI, the GPU with ONNXJIT_TEST_GPU=1.

The simulator runs kernels as Python threads; the cases it took longer than
SIM_BUDGET_S on (attention with grouped heads, mostly) are left to
`python -m tests.conformance --target cuda` and to GPU runs, unless
ONNXJIT_FULL_CONFORMANCE=1. Regenerate the list and the times with
`python -m tests.conformance --target cuda --write`."""
import json
import os

from tests.conformance import list_path, pass_list, pass_list_tests

SIM_BUDGET_S = 3.0

with open(list_path("cuda", "seconds")) as f:
    SECONDS = json.load(f)
FULL = os.environ.get("ONNXJIT_FULL_CONFORMANCE") == "1" or os.environ.get("ONNXJIT_TEST_GPU") == "1"
RUN = [n for n in pass_list("cuda") if FULL or SECONDS.get(n, 0.0) <= SIM_BUDGET_S]

test_pass_list_size, test_node_case = pass_list_tests("cuda", minimum=600, run=RUN)


def test_simulator_subset_size():
    assert len(RUN) >= 500
