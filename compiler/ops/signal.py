"""Signal ops: DFT, STFT and MelWeightMatrix.

Complex tensors are real ones with a last dim of 2 (real, imaginary); a last
dim of 1 is a real signal. Lengths and axes that decide shapes must be known
when compiling (value inputs)."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..registry import OPAQUE, register
from .common import ShapeError, attr, attr_to_input, axis, const_of, ints


def _scalar(node, i, default=None):
    v = const_of(node, i)
    return default if v is None or v.size == 0 else ints(v)[0]


def dft_params(node):
    """(axis, n_fft, inverse, onesided) of a DFT."""
    x = node.inputs[0]
    a = axis(_scalar(node, 2, -2), len(x.shape))
    if a == len(x.shape) - 1 or x.shape[-1] not in (1, 2):
        raise ShapeError("DFT: the last dim must be 1 (real) or 2 (complex) and not the axis")
    inverse, onesided = bool(attr(node, "inverse", 0)), bool(attr(node, "onesided", 0))
    n_fft = _scalar(node, 1)
    if n_fft is None:
        n_fft = 2 * (x.shape[a] - 1) if inverse and onesided else x.shape[a]
    if n_fft < 1:
        raise ShapeError("DFT: dft_length must be positive")
    return a, int(n_fft), inverse, onesided


def _dft(node):
    x = node.inputs[0]
    a, n_fft, inverse, onesided = dft_params(node)
    s = list(x.shape)
    s[a] = n_fft // 2 + 1 if onesided and not inverse else n_fft
    s[-1] = 1 if inverse and onesided else 2
    return [(x.dtype, tuple(s))]


def _dft_normalize(node, opset):
    if opset < 20:       # axis moved from an attribute (default 1) to input 2 (default -2)
        attr_to_input(node, "axis", 2, np.int64, 1)


def stft_params(node):
    """(frame_step, frame_length, frames, onesided) of an STFT."""
    x, window = node.inputs[0], node.input(2)
    if len(x.shape) != 3 or x.shape[-1] not in (1, 2):
        raise ShapeError("STFT: the signal must be (batch, length, 1 or 2)")
    step = _scalar(node, 1)
    length = _scalar(node, 3, window.shape[0] if window is not None else x.shape[1])
    if window is not None and window.shape != (length,):
        raise ShapeError("STFT: the window length differs from frame_length")
    if step is None or step < 1 or not 1 <= length <= x.shape[1]:
        raise ShapeError("STFT: bad frame_step or frame_length")
    return int(step), int(length), 1 + (x.shape[1] - length) // step, bool(attr(node, "onesided", 1))


def _stft(node):
    x = node.inputs[0]
    _, length, frames, onesided = stft_params(node)
    return [(x.dtype, (x.shape[0], frames, length // 2 + 1 if onesided else length, 2))]


def dft_length_of_mel(node) -> int:
    return int(_scalar(node, 1))


def _mel(node):
    bins, n_fft = _scalar(node, 0), _scalar(node, 1)
    if bins is None or n_fft is None or bins < 1 or n_fft < 1:
        raise ShapeError("MelWeightMatrix: num_mel_bins and dft_length must be positive")
    return [(dtypes.to_numpy(attr(node, "output_datatype", 1)), (n_fft // 2 + 1, bins))]


register("DFT", OPAQUE, _dft, value_inputs=(1, 2), normalize=_dft_normalize)
register("STFT", OPAQUE, _stft, value_inputs=(1, 3))
register("MelWeightMatrix", OPAQUE, _mel, value_inputs=(0, 1))
