"""CPU lowerings of the signal ops onto targets/cpu/kernels/signal.py."""
from __future__ import annotations

import numpy as np

from compiler.ops import signal as signal_ops

from . import source
from .lower import lower


def _prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64))


def _around(shape, a):
    """(outer, n, inner, channels) view of a complex-as-real shape around axis a."""
    return source.ints((_prod(shape[:a]), shape[a], _prod(shape[a + 1:-1]), shape[-1]))


@lower("DFT")
def _dft(node, em):
    x, out = node.inputs[0], node.outputs[0]
    a, n_fft, inverse, onesided = signal_ops.dft_params(node)
    res = em.alloc(out)
    em.emit(f"{em.lib('signal')}.dft({em[x]}.reshape({_around(x.shape, a)}), {n_fft}, {inverse}, {onesided}, "
            f"{res}.reshape({_around(out.shape, a)}))")


@lower("STFT")
def _stft(node, em):
    x, window, out = node.inputs[0], node.input(2), node.outputs[0]
    step, length, frames, onesided = signal_ops.stft_params(node)
    L = em.lib("signal")
    w = em[window] if window is not None else em.const(np.ones(length, x.dtype))
    shape = (x.shape[0], frames, length, x.shape[2])
    t = em.tmp()
    em.emit(f"{t} = {em.empty(shape, x.dtype)}")
    em.emit(f"{L}.frames({em[x]}, {step}, {w}, {t})")
    res = em.alloc(out)
    rows = x.shape[0] * frames
    em.emit(f"{L}.dft({t}.reshape({source.ints((rows, length, 1, x.shape[2]))}), {length}, False, {onesided}, "
            f"{res}.reshape({source.ints((rows, out.shape[2], 1, 2))}))")


@lower("MelWeightMatrix")
def _mel(node, em):
    out = node.outputs[0]
    n_fft = signal_ops.dft_length_of_mel(node)
    res = em.alloc(out)
    rate, low, high = (f"np.float64({em[v]}.reshape(1)[0])" for v in node.inputs[2:5])
    em.emit(f"{em.lib('signal')}.mel_weights({n_fft}, {rate}, {low}, {high}, {res})")
