import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# pytest-xdist keeps both cores busy: the many small compiles here run without helper
# processes (runtime/compile_jobs.py); tests/test_compile_jobs.py turns them on.
os.environ.setdefault("ONNXJIT_COMPILE_JOBS", "1")

# CUDA tests run on Numba's simulator (CI has no GPU); ONNXJIT_TEST_GPU=1 runs
# them on the real device. Must be set before numba is first imported.
if os.environ.get("ONNXJIT_TEST_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


@pytest.fixture(scope="session")
def all_cases():
    """The ONNX node conformance cases of the installed onnx, by name."""
    from tests.conformance import cases
    return cases()
