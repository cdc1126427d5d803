"""CPU lowering of RNN, GRU and LSTM onto targets/cpu/kernels/rnn.py.

Attribute strings never reach the generated code: directions and activation
names become integer codes through tables, their alphas/betas constant arrays."""
from __future__ import annotations

import numpy as np

from compiler.ops import rnn as rnn_ops
from compiler.ops.common import attr

from . import source
from .kernels import gemv_acc, sgemm
from .kernels.sgemm import NR
from .kernels import rnn as rk
from .lower import PARALLEL_GEMM_MACS, gemm_parts, lower

DIRECTION_CODES = {"forward": 0, "reverse": 1, "bidirectional": 2}
KERNELS = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}


def activation_tables(node, nd):
    """(codes int64, alphas float64, betas float64), each [dirs, activations per direction].
    alpha/beta lists are consumed in order by the activations that take them."""
    default = rnn_ops.DEFAULT_ACTIVATIONS[node.op]
    names = list(attr(node, "activations", None) or default * nd)
    if len(names) == len(default) and nd == 2:
        names = names * 2
    if len(names) != len(default) * nd:
        raise NotImplementedError(f"expected {len(default) * nd} activations, got {len(names)}")
    alphas = list(attr(node, "activation_alpha", None) or [])
    betas = list(attr(node, "activation_beta", None) or [])
    codes, a_out, b_out = [], [], []
    for name in names:
        entry = rk.ACTIVATIONS.get(str(name).lower())
        if entry is None:
            raise NotImplementedError("unsupported activation")
        code, da, db = entry
        codes.append(code)
        a_out.append(alphas.pop(0) if da is not None and alphas else (da or 0.0))
        b_out.append(betas.pop(0) if db is not None and betas else (db or 0.0))
    shape = (nd, len(default))
    return (np.array(codes, np.int64).reshape(shape), np.array(a_out, np.float64).reshape(shape),
            np.array(b_out, np.float64).reshape(shape))


def _pad_columns(m, hs):
    """m (K x 4 hs) with zero columns up to gemv_acc.padded(4 hs): the rows the LSTM kernel's
    per-step product accumulates into."""
    out = np.zeros((m.shape[0], gemv_acc.padded(4 * hs)), np.float32)
    out[:, :m.shape[1]] = m
    return out


def _packed_lstm_weights(em, v, dtype, pack_one):
    """The default float32 LSTM cell's packing of a constant W or R, one row a direction (its
    kernels' layouts: rnn._plain_lstm32); a zero-size array where v is no float32 constant
    (the kernel packs R itself then, and W goes through the plain GEMM)."""
    if not v.is_const or dtype != np.float32:
        return "np.empty((0, 0), np.float32)"
    return em.const(np.stack([pack_one(np.asarray(m, np.float32)) for m in v.const]))


@lower("RNN", "GRU", "LSTM")
def _recurrent(node, em):
    x, w, r = node.inputs[:3]
    if x.dtype.kind != "f":
        raise NotImplementedError(f"{node.op} on {x.dtype} is not supported")
    layout = int(attr(node, "layout", 0))
    nd, hs, g = rnn_ops.num_directions(node), rnn_ops.hidden_size(node), rnn_ops.GATES[node.op]
    seq, batch = (x.shape[1], x.shape[0]) if layout else x.shape[:2]
    state = (batch, nd, hs) if layout else (nd, batch, hs)
    dt = source.dtype_name(x.dtype)

    def given(i, fallback):
        v = node.input(i)
        return em[v] if v is not None else fallback

    def zeros(shape):
        return f"np.zeros({source.ints(shape)}, {dt})"

    args = [em[x], em[w], em[r], given(3, zeros((nd, 2 * g * hs))),
            given(4, f"np.full({source.num(batch)}, {source.num(seq)}, np.int32)"), given(5, zeros(state))]
    if node.op == "LSTM":
        args += [given(6, zeros(state)), given(7, zeros((nd, 3 * hs)))]
    for i in range(3 if node.op == "LSTM" else 2):
        out = node.outputs[i] if i < len(node.outputs) and node.outputs[i].name else None
        args.append(em.alloc(out) if out is not None else f"np.empty({source.ints((0,) * (4 if i == 0 else 3))}, {dt})")
    codes, alphas, betas = activation_tables(node, nd)
    clip = attr(node, "clip", None)
    args += [source.num(layout), source.num(DIRECTION_CODES[attr(node, "direction", "forward")]),
             em.const(codes), em.const(alphas), em.const(betas),
             "np.inf" if clip is None else source.num(float(clip))]
    if node.op == "GRU":
        args.append(source.num(bool(attr(node, "linear_before_reset", 0))))
    if node.op == "LSTM":
        args.append(source.num(bool(attr(node, "input_forget", 0))))
        wp = _packed_lstm_weights(em, w, x.dtype, lambda wd: sgemm.pack_panels(_pad_columns(wd.T, hs)))
        args += [wp, _packed_lstm_weights(em, r, x.dtype, lambda rd: gemv_acc.pack(np.ascontiguousarray(rd.T)))]
        parts = _projection_parts(node, em, codes, clip, seq * batch, x.shape[2], hs)
        if parts > 1:
            xwp = em.tmp()
            em.emit(f"{xwp} = {em.lib('rnn')}.lstm_projections_par({em[x]}, {wp}, {hs}, {parts})")
            args.append(xwp)
        else:
            args.append("np.empty((0, 0, 0), np.float32)")
    em.emit(f"{em.lib('rnn')}.{KERNELS[node.op]}({', '.join(args)})")


def _projection_parts(node, em, codes, clip, rows, k, hs):
    """Threads for a default float32 LSTM's input projection with W constant
    (rnn.lstm_projections_par: column bands), 1 where it runs inside rnn.lstm: one thread,
    a GEMM under lower.PARALLEL_GEMM_MACS, or a cell the plain kernel does not take (peepholes,
    clip, coupled gates, other activations). The bench LSTM (32 x 64 x 512) at 2 threads: the
    projection 18.9 -> 11.8 us."""
    w = node.inputs[1]
    default = [rk.ACTIVATIONS[n.lower()][0] for n in rnn_ops.DEFAULT_ACTIVATIONS["LSTM"]]
    plain = (w.is_const and w.dtype == np.float32 and node.inputs[0].dtype == np.float32 and clip is None
             and not attr(node, "input_forget", 0) and node.input(7) is None
             and all(list(row) == default for row in codes))
    return gemm_parts(em, 4 * hs, k, rows, PARALLEL_GEMM_MACS, NR) if plain else 1
