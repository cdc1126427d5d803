"""nn.conv_gemm on float32 as a C callback: its callers link a symbol, not its code.

Numba links into a kernel's module everything the kernel calls and optimises and compiles it
all again there, so each caller pays for its callees once more. conv_gemm's paths (implicit
GEMM, 1x1, the im2col ones) were compiled four times in a model at 2 threads: for conv_gemm,
for conv_gemm_par's band, its parallel loop and conv_gemm_par itself. Behind the symbol they
compile once; nn.conv_gemm32 and conv_gemm_par's float32 bands call it. The callback compiles
when this module is imported: the lowering imports it wherever it calls either, and only
there, so the symbol is bound before their code is compiled or loaded."""

from .jit import callback
from .nn import CONV_GEMM32_SIGNATURE, CONV_GEMM32_SYMBOL, conv_arrays32, conv_gemm


@callback(CONV_GEMM32_SYMBOL, CONV_GEMM32_SIGNATURE, error_model="numpy")
def conv_gemm32_callback(xp, N, C, D, H, W, wp, M, cg, kD, kH, kW, bp, op, OD, OH, OW, rp, has_res,
                         sd, sh, sw, pd, ph, pw, dd, dh, dw, group, act, alpha, beta):
    """conv_gemm over C-contiguous float32 arrays at these addresses; 1 if it raised (a C
    callback cannot raise: nn.conv_gemm32 raises for it)."""
    x, w, b, out, res = conv_arrays32(xp, N, C, D, H, W, wp, M, cg, kD, kH, kW, bp, op, OD, OH, OW, rp, has_res)
    try:
        conv_gemm(x, w, b, out, (sd, sh, sw), (pd, ph, pw), (dd, dh, dw), group, res, act, alpha, beta)
    except Exception:  # noqa: BLE001 (Numba catches no narrower class; the caller raises)
        return 1
    return 0
