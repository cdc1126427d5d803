"""Every ONNX node case in the committed pass list must still pass on cpu.

Regenerate the list with `python -m tests.conformance --write` after adding ops."""
from tests.conformance import pass_list_tests

test_pass_list_size, test_node_case = pass_list_tests("cpu", minimum=1700)
