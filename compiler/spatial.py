"""Shape arithmetic for spatial ops (Conv, ConvTranspose, pooling).

Pure Python, ints in / ints out, no numpy or onnx.  Every function works on the
spatial dims only (1, 2 or 3 of them) and returns ``(pads_begin, pads_end,
out_spatial)`` as tuples of the same length; the caller pads them to 3 dims for
the kernels in ``targets/cpu/kernels/nn.py``.

``pads`` is ONNX-style ``[b1, .., bn, e1, .., en]`` or None (all zero).
``auto_pad`` is one of "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER" (None and
"" mean "NOTSET"; bytes are accepted as ONNX attributes sometimes are).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["conv_geometry", "pool_geometry", "conv_transpose_geometry"]

_AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def _norm_auto_pad(auto_pad) -> str:
    """Normalise the auto_pad attribute (None/''/bytes allowed) and validate it."""
    if auto_pad is None or auto_pad == "" or auto_pad == b"":
        return "NOTSET"
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"unsupported auto_pad {auto_pad!r}")
    return auto_pad


def _ints(values, n: int, default: int, what: str) -> tuple[int, ...]:
    """Return ``values`` as an n-tuple of ints, or ``(default,) * n`` when empty."""
    if values is None or len(values) == 0:
        return (default,) * n
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries, expected {n}")
    return tuple(int(v) for v in values)


def _explicit_pads(pads, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split ONNX pads [b1..bn, e1..en] into (begins, ends); None means zeros."""
    if pads is None or len(pads) == 0:
        return (0,) * n, (0,) * n
    if len(pads) != 2 * n:
        raise ValueError(f"pads has {len(pads)} entries, expected {2 * n}")
    p = [int(v) for v in pads]
    return tuple(p[:n]), tuple(p[n:])


def _common(in_spatial, kernel, strides, dilations):
    n = len(in_spatial)
    if n == 0:
        raise ValueError("need at least one spatial dim")
    in_spatial = tuple(int(v) for v in in_spatial)
    kernel = _ints(kernel, n, 1, "kernel_shape")
    if len(kernel) != n:
        raise ValueError("kernel_shape length mismatch")
    strides = _ints(strides, n, 1, "strides")
    dilations = _ints(dilations, n, 1, "dilations")
    if min(strides) < 1 or min(dilations) < 1 or min(kernel) < 1:
        raise ValueError("kernel, strides and dilations must be >= 1")
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    return n, in_spatial, strides, eff


def _same_pads(auto_pad: str, in_spatial, strides, eff):
    """SAME_* padding: out = ceil(L / s); total pad split, extra on the end (UPPER) or begin (LOWER).

    The total is clamped at 0 (stride larger than the window), as the reference Conv does.
    """
    begins, ends, outs = [], [], []
    for length, s, k in zip(in_spatial, strides, eff):
        out = -(-length // s)
        total = max(0, (out - 1) * s + k - length)
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begins.append(begin)
        ends.append(total - begin)
        outs.append(out)
    return tuple(begins), tuple(ends), tuple(outs)


def _check_out(out_spatial, what: str):
    if min(out_spatial) < 1:
        raise ValueError(f"{what}: non-positive output spatial shape {out_spatial}")
    return out_spatial


def conv_geometry(
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    dilations: Sequence[int] | None,
    pads: Sequence[int] | None,
    auto_pad: str | None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Conv output size and effective pads: out = floor((L + pb + pe - ((k-1)*d+1)) / s) + 1."""
    auto_pad = _norm_auto_pad(auto_pad)
    n, in_spatial, strides, eff = _common(in_spatial, kernel, strides, dilations)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends, outs = _same_pads(auto_pad, in_spatial, strides, eff)
        return begins, ends, _check_out(outs, "Conv")
    if auto_pad == "VALID":
        begins, ends = (0,) * n, (0,) * n
    else:
        begins, ends = _explicit_pads(pads, n)
    outs = tuple(
        (length + b + e - k) // s + 1
        for length, b, e, k, s in zip(in_spatial, begins, ends, eff, strides)
    )
    return begins, ends, _check_out(outs, "Conv")


def pool_geometry(
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    dilations: Sequence[int] | None,
    pads: Sequence[int] | None,
    auto_pad: str | None,
    ceil_mode: int | bool = 0,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Pooling output size and pads; ceil_mode rounds up but the last window must start in input or left pad.

    With ceil_mode the last window may run past ``pads_end``; the kernels ignore (never count)
    positions beyond ``L + pads_end``.  ceil_mode has no effect with auto_pad SAME_*/VALID
    (the ONNX formulas for those are already ceil-based).
    """
    auto_pad = _norm_auto_pad(auto_pad)
    n, in_spatial, strides, eff = _common(in_spatial, kernel, strides, dilations)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends, outs = _same_pads(auto_pad, in_spatial, strides, eff)
        return begins, ends, _check_out(outs, "Pool")
    if auto_pad == "VALID":
        begins, ends = (0,) * n, (0,) * n
    else:
        begins, ends = _explicit_pads(pads, n)
    outs = []
    for length, b, e, k, s in zip(in_spatial, begins, ends, eff, strides):
        span = length + b + e - k
        if ceil_mode and auto_pad == "NOTSET":
            out = -(-span // s) + 1
            # The last window must start inside the input or the left padding.
            if (out - 1) * s >= length + b:
                out -= 1
        else:
            out = span // s + 1
        outs.append(out)
    return begins, ends, _check_out(tuple(outs), "Pool")


def conv_transpose_geometry(
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    dilations: Sequence[int] | None,
    pads: Sequence[int] | None,
    auto_pad: str | None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """ConvTranspose size per the ONNX spec: out = s*(L-1) + output_padding + ((k-1)*d+1) - pb - pe.

    When ``output_shape`` is given (spatial dims, or full N,C,... shape) the pads are derived
    from it (explicit pads are ignored): total = s*(L-1) + op + ((k-1)*d+1) - out;
    SAME_UPPER puts total//2 at the begin, anything else (NOTSET/SAME_LOWER/VALID) puts
    total - total//2 at the begin.  SAME_* without output_shape uses out = L*s.
    Pads may come out negative (output larger than the full result); the kernel handles that.
    """
    auto_pad = _norm_auto_pad(auto_pad)
    n, in_spatial, strides, eff = _common(in_spatial, kernel, strides, dilations)
    output_padding = _ints(output_padding, n, 0, "output_padding")
    full = tuple(
        s * (length - 1) + op + k
        for length, s, op, k in zip(in_spatial, strides, output_padding, eff)
    )
    if output_shape is not None and len(output_shape) > 0:
        target = tuple(int(v) for v in output_shape)
        if len(target) == n + 2:
            target = target[2:]
        if len(target) != n:
            raise ValueError(f"output_shape has {len(target)} entries, expected {n}")
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = tuple(length * s for length, s in zip(in_spatial, strides))
    else:
        if auto_pad == "VALID":
            begins, ends = (0,) * n, (0,) * n
        else:
            begins, ends = _explicit_pads(pads, n)
        outs = tuple(f - b - e for f, b, e in zip(full, begins, ends))
        return begins, ends, _check_out(outs, "ConvTranspose")
    begins, ends = [], []
    for f, out in zip(full, target):
        total = f - out
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begins.append(begin)
        ends.append(total - begin)
    return tuple(begins), tuple(ends), _check_out(target, "ConvTranspose")
