"""The CUDA target: IR -> a host-side graph function launching Numba CUDA kernels."""
