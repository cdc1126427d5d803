"""nn.dw_range (the wide depthwise path) on float32 as a C callback, for the reason
callback_conv_gemm.py gives: nn.conv_dw_serial and nn.conv_dw_par call it by symbol, and the
lowering imports this module wherever it calls either."""

from .jit import callback
from .nn import DW_RANGE32_SIGNATURE, DW_RANGE32_SYMBOL, conv_arrays32, dw_range


@callback(DW_RANGE32_SYMBOL, DW_RANGE32_SIGNATURE, error_model="numpy")
def dw_range32_callback(xp, N, C, D, H, W, wp, M, cg, kD, kH, kW, bp, op, OD, OH, OW, rp, has_res,
                        sd, sh, sw, pd, ph, pw, group, t0, t1, act, alpha, beta):
    """nn.dw_range (planes t0 .. t1 of a dw_wide conv) over float32 arrays at these addresses."""
    x, w, b, out, res = conv_arrays32(xp, N, C, D, H, W, wp, M, cg, kD, kH, kW, bp, op, OD, OH, OW, rp, has_res)
    try:
        dw_range(x, w, out, (sd, sh, sw), (pd, ph, pw), group, t0, t1, b, res, act, alpha, beta)
    except Exception:  # noqa: BLE001
        return 1
    return 0
