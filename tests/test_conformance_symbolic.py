"""The ONNX node cases with every graph input dim made symbolic (dim_param),
output dims unknown and value_info dropped, as onnx-mlir runs them: each case
in the committed pass list must pass on cpu.

Regenerate the list with `python -m tests.conformance --target cpu:symbolic --write`."""
from tests.conformance import pass_list_tests

test_pass_list_size, test_node_case = pass_list_tests("cpu:symbolic", minimum=1700)
