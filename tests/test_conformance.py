"""Every ONNX node case in the committed pass list must still pass on cpu.

Regenerate the list with `python -m tests.conformance --write` after adding ops."""

import pytest

from tests.conformance import pass_list, run_case

PASSING = pass_list("cpu")


def test_pass_list_size(all_cases):
    known = [n for n in PASSING if n in all_cases]
    print(f"\n{len(known)} of {len(all_cases)} node conformance cases are in the cpu pass list")
    assert len(known) >= 700


@pytest.mark.parametrize("name", PASSING)
def test_node_case(name, all_cases):
    if name not in all_cases:
        pytest.skip("case not in this onnx version")
    run_case(all_cases[name])
