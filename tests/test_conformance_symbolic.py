"""The ONNX node cases with every graph input dim made symbolic (dim_param),
output dims unknown and value_info dropped, as onnx-mlir runs them: each case
in the committed pass list must pass on cpu.

Regenerate the list with `python -m tests.conformance --target cpu:symbolic --write`."""
import pytest

from tests.conformance import pass_list, run_case

PASSING = pass_list("cpu:symbolic")


def test_pass_list_size(all_cases):
    known = [n for n in PASSING if n in all_cases]
    print(f"\n{len(known)} of {len(all_cases)} node cases are in the cpu:symbolic pass list")
    assert len(known) >= 1400


@pytest.mark.parametrize("name", PASSING)
def test_node_case(name, all_cases):
    if name not in all_cases:
        pytest.skip("case not in this onnx version")
    run_case(all_cases[name], target="cpu:symbolic")
