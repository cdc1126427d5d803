"""CUDA target: numba.cuda kernel libraries (kernels/) called from generated host code."""
