"""RNN, GRU and LSTM against onnxruntime: ONNX options node by node, and
torch-exported stacks (2 layers, bidirectional, batch_first)."""
import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler import compile
from tests.helpers import model

ort = pytest.importorskip("onnxruntime")
RTOL, ATOL = 1e-4, 1e-5
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
F = TensorProto.FLOAT


def run_ort(m, feeds):
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check(m, feeds, want=None):
    want = run_ort(m, feeds) if want is None else want
    got = compile(m).run(feeds)
    for o, w in zip(m.graph.output, want):
        np.testing.assert_allclose(got[o.name], w, rtol=RTOL, atol=ATOL, err_msg=o.name)


def recurrent_case(op, seq=5, batch=3, inp=4, hs=6, direction="forward", layout=0, seq_lens=None,
                   initial=False, bias=True, peepholes=False, outputs=("Y", "Y_h", "Y_c"), seed=0, **attrs):
    """A one-node model: X, sequence_lens and the initial states are inputs, weights initializers."""
    rng = np.random.default_rng(seed)
    nd, g = (2 if direction == "bidirectional" else 1), GATES[op]
    xs = (batch, seq, inp) if layout else (seq, batch, inp)
    state = (batch, nd, hs) if layout else (nd, batch, hs)
    feeds = {"X": rng.standard_normal(xs).astype(np.float32)}
    inits = {"W": rng.standard_normal((nd, g * hs, inp)).astype(np.float32) * 0.5,
             "R": rng.standard_normal((nd, g * hs, hs)).astype(np.float32) * 0.5}
    names = ["X", "W", "R", "", "", "", "", ""]
    if bias:
        inits["B"] = rng.standard_normal((nd, 2 * g * hs)).astype(np.float32) * 0.5
        names[3] = "B"
    if seq_lens is not None:
        feeds["sequence_lens"] = np.asarray(seq_lens, np.int32)
        names[4] = "sequence_lens"
    if initial:
        feeds["initial_h"] = rng.standard_normal(state).astype(np.float32)
        names[5] = "initial_h"
        if op == "LSTM":
            feeds["initial_c"] = rng.standard_normal(state).astype(np.float32)
            names[6] = "initial_c"
    if peepholes:
        inits["P"] = rng.standard_normal((nd, 3 * hs)).astype(np.float32) * 0.5
        names[7] = "P"
    while not names[-1]:
        names.pop()
    all_outs = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    outs = [o if o in outputs else "" for o in all_outs]
    while not outs[-1]:
        outs.pop()
    node = helper.make_node(op, names, outs, hidden_size=hs, direction=direction, layout=layout, **attrs)
    ysh = (batch, seq, nd, hs) if layout else (seq, nd, batch, hs)
    ins = [(k, TensorProto.INT32 if k == "sequence_lens" else F, v.shape) for k, v in feeds.items()]
    m = model([node], ins, [(o, F, ysh if o == "Y" else state) for o in outs if o], inits, opset=22)
    return m, feeds


CASES = {
    "rnn_default": ("RNN", {}),
    "rnn_empty_sequence": ("RNN", dict(direction="reverse", initial=True, seq_lens=[3, 0, 5])),
    "rnn_reverse_lens": ("RNN", dict(direction="reverse", seq_lens=[5, 2, 4])),
    "rnn_bidir_layout1_init": ("RNN", dict(direction="bidirectional", layout=1, initial=True, seq_lens=[3, 5, 1])),
    "rnn_relu_clip": ("RNN", dict(activations=["Relu"], clip=0.7)),
    "rnn_leaky_bidir": ("RNN", dict(direction="bidirectional", activations=["LeakyRelu", "Affine"],
                                     activation_alpha=[0.2, 0.5], activation_beta=[0.1])),
    "gru_default": ("GRU", {}),
    "gru_lbr": ("GRU", dict(linear_before_reset=1, initial=True)),
    "gru_bidir_lens": ("GRU", dict(direction="bidirectional", seq_lens=[4, 5, 2], initial=True)),
    "gru_empty_sequence": ("GRU", dict(seq_lens=[0, 5, 2], initial=True)),
    "gru_lbr_reverse_layout1": ("GRU", dict(linear_before_reset=1, direction="reverse", layout=1,
                                            seq_lens=[2, 5, 3])),
    "gru_hardsigmoid_clip": ("GRU", dict(activations=["HardSigmoid", "Softsign"], activation_alpha=[0.3],
                                         activation_beta=[0.4], clip=1.5, outputs=("Y",))),
    "gru_nobias": ("GRU", dict(bias=False, outputs=("Y_h",))),
    "lstm_default": ("LSTM", {}),
    "lstm_wide_hidden": ("LSTM", dict(hs=21, initial=True)),    # the plain cell's 8-row passes and its tail
    # 4 hs = 320 columns: gemv_acc's 16- and 4-vector chunks (rnn._plain_lstm32), two directions
    "lstm_bidir_wide_lens": ("LSTM", dict(hs=80, batch=2, direction="bidirectional", initial=True, seq_lens=[5, 3])),
    "lstm_peep_lens_init": ("LSTM", dict(peepholes=True, seq_lens=[5, 3, 1], initial=True)),
    "lstm_bidir_peep": ("LSTM", dict(direction="bidirectional", peepholes=True, initial=True,
                                     seq_lens=[2, 5, 4])),
    "lstm_empty_sequence": ("LSTM", dict(direction="bidirectional", initial=True, seq_lens=[3, 0, 5])),
    "lstm_reverse_layout1": ("LSTM", dict(direction="reverse", layout=1, initial=True, outputs=("Y_c",))),
    "lstm_input_forget": ("LSTM", dict(input_forget=1, peepholes=True)),
    "lstm_clip": ("LSTM", dict(clip=0.5, outputs=("Y", "Y_c"))),
    "lstm_activations": ("LSTM", dict(direction="bidirectional", activations=[
        "HardSigmoid", "Tanh", "Softsign", "Sigmoid", "ScaledTanh", "Elu"],
        activation_alpha=[0.25, 0.9, 1.1], activation_beta=[0.45, 1.2])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_options(name):
    op, kw = CASES[name]
    m, feeds = recurrent_case(op, **kw)
    if kw.get("layout"):
        # onnxruntime has no layout=1: its oracle is the layout-0 twin (same weights) on transposed data
        twin, _ = recurrent_case(op, **dict(kw, layout=0))
        want = run_ort(twin, {k: v if k == "sequence_lens" else v.transpose(1, 0, 2) for k, v in feeds.items()})
        outs = [o.name for o in twin.graph.output]
        check(m, feeds, [w.transpose(2, 0, 1, 3) if o == "Y" else w.transpose(1, 0, 2) for o, w in zip(outs, want)])
    else:
        check(m, feeds)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_lstm_projection_in_parallel(direction, tmp_path):
    """At 2 threads a default LSTM's input projection (32 x 64 x 512 multiply-adds a direction)
    runs before the recurrence in column bands (rnn.lstm_projections_par): same outputs."""
    m, feeds = recurrent_case("LSTM", seq=16, batch=2, inp=64, hs=128, direction=direction, initial=True,
                              seq_lens=[16, 11])
    want = run_ort(m, feeds)
    got = compile(m, threads=2, cache_dir=str(tmp_path)).run(feeds)
    for o, w in zip(m.graph.output, want):
        np.testing.assert_allclose(got[o.name], w, rtol=RTOL, atol=ATOL, err_msg=o.name)
    src = "".join(open(p).read() for p in tmp_path.glob("**/onnxjit_g_*.py"))
    assert "L_rnn.lstm_projections_par(" in src, src


@pytest.mark.parametrize("hs", [6, 80])
def test_lstm_weights_as_inputs(hs):
    """W and R fed at run time: the default cell packs R itself and projects with the plain GEMM."""
    m, feeds = recurrent_case("LSTM", hs=hs, direction="bidirectional", initial=True, seq_lens=[5, 2, 4])
    for init in list(m.graph.initializer):
        if init.name in ("W", "R"):
            feeds[init.name] = numpy_helper.to_array(init)
            m.graph.input.append(helper.make_tensor_value_info(init.name, F, list(init.dims)))
            m.graph.initializer.remove(init)
    check(m, feeds)


@pytest.mark.parametrize("op", sorted(GATES))
def test_float64(op):
    """float64 graphs run in float64; the float32 onnxruntime result is the oracle."""
    m, feeds = recurrent_case(op, direction="bidirectional", seq_lens=[5, 1, 3], initial=True)
    want = run_ort(m, feeds)
    for t in list(m.graph.input) + list(m.graph.output):
        if t.type.tensor_type.elem_type == F:
            t.type.tensor_type.elem_type = TensorProto.DOUBLE
    for init in m.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), init.name))
    got = compile(m).run({k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()})
    for o, w in zip(m.graph.output, want):
        assert got[o.name].dtype == np.float64
        np.testing.assert_allclose(got[o.name], w, rtol=RTOL, atol=ATOL, err_msg=o.name)


# torch-exported stacks -----------------------------------------------------------



def _torch_model(kind, batch_first, bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    net = cls(input_size=5, hidden_size=7, num_layers=2, bidirectional=bidirectional,
              batch_first=batch_first).eval()
    x = torch.randn((3, 6, 5) if batch_first else (6, 3, 5))
    f = io.BytesIO()
    torch.onnx.export(net, (x,), f, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    return onnx.load_from_string(f.getvalue()), x.numpy()


@pytest.mark.filterwarnings("ignore")    # the TorchScript exporter's deprecation and tracer notes
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_export(kind, batch_first, bidirectional):
    m, x = _torch_model(kind, batch_first, bidirectional)
    assert any(n.op_type == kind.upper() for n in m.graph.node)
    check(m, {"x": x})
