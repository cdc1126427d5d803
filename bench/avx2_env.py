"""The environment that builds the kernels for an AVX2 CPU (the Zen 3 machine) on this one:
LLVM's host features without AVX-512 and the extensions that come with it. Numba and
runtime.cache read NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, so kernels, cache keys and the
bench's CPU column follow; the code runs here, 256-bit vectors and all.

    eval "$(python bench/avx2_env.py)" && python -m pytest -q tests/test_conv_small.py

Timings so made compare our AVX2 kernels with each other, not with onnxruntime, which
still picks its AVX-512 kernels here."""
import llvmlite.binding as ll

# what Zen 3 lacks of Zen 4's features (LLVM's names; those absent on the host are ignored)
NOT_IN_AVX2 = ("avx512", "evex512", "avx10", "amx", "vaes", "vpclmulqdq", "gfni", "avxvnni")


def avx2_features() -> str:
    features = ll.get_host_cpu_features()
    for name in list(features):
        if name.startswith(NOT_IN_AVX2):
            features[name] = False
    return features.flatten()


if __name__ == "__main__":
    print(f"export NUMBA_CPU_NAME=znver3 NUMBA_CPU_FEATURES='{avx2_features()}'")
