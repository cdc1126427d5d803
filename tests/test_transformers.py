"""A BERT-style encoder (bench/models/bert_small.onnx, exported from torch) in
the reduced precisions users deploy: float16 (onnxruntime's converter) and
dynamically quantized (onnxruntime's quantize_dynamic, uint8 weights), both
against onnxruntime on the same converted model."""
import os

import numpy as np
import onnx
import pytest

from compiler import compile

ort = pytest.importorskip("onnxruntime")
MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "models", "bert_small.onnx")


@pytest.fixture(scope="module")
def feeds():
    return dict(np.load(MODEL.replace(".onnx", ".inputs.npz")))


def _ort(model: onnx.ModelProto, feeds, optimize=True):
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_float16_bert_matches_onnxruntime(feeds, tmp_path):
    from onnxruntime.transformers.float16 import convert_float_to_float16
    m16 = convert_float_to_float16(onnx.load(MODEL), keep_io_types=False)
    got = compile(m16, cache_dir=str(tmp_path)).run(feeds)
    for want, (name, g) in zip(_ort(m16, feeds), got.items()):
        assert g.dtype == np.float16 == want.dtype, name
        np.testing.assert_allclose(g.astype(np.float32), want.astype(np.float32), rtol=1e-2, atol=2e-2, err_msg=name)


def with_classifier_head(model: onnx.ModelProto, labels=4, seed=0) -> onnx.ModelProto:
    """BERT for sequence classification: logits = pooled @ W + b on the encoder's pooled
    output, W and b drawn as torch initialises nn.Linear (uniform, bound 1/sqrt(fan_in))."""
    from onnx import helper, numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    pooled = m.graph.output[1].name
    hidden = int(m.graph.output[1].type.tensor_type.shape.dim[-1].dim_value)
    rng, bound = np.random.default_rng(seed), 1 / np.sqrt(hidden)
    w = rng.uniform(-bound, bound, (hidden, labels)).astype(np.float32)
    b = rng.uniform(-bound, bound, (labels,)).astype(np.float32)
    m.graph.initializer.extend([numpy_helper.from_array(w, "classifier_w"), numpy_helper.from_array(b, "classifier_b")])
    m.graph.node.extend([helper.make_node("MatMul", [pooled, "classifier_w"], ["classifier_mm"]),
                         helper.make_node("Add", ["classifier_mm", "classifier_b"], ["logits"])])
    m.graph.output.append(helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None))
    return m


def test_dynamically_quantized_bert_matches_onnxruntime(feeds, tmp_path):
    """uint8 activations and weights, with a classification head, against
    onnxruntime as users run it (graph optimisations on): atol 1e-3 on the logits,
    as the issue asks, and on the hidden states and pooled output too.
    onnxruntime's unoptimised session is ~2e-2 away from its optimised one on the
    same model (a LayerNorm output one float32 ulp apart moves a few activations
    across a quantization step), so that one is only held to its own spread.
    On AVX-512 (VNNI) CPUs onnxruntime's optimised kernels round a few hidden-state
    activations across a step the other way (measured: 0.7% of them off by up to
    3.9e-3, logits still exact, pooled 1.2e-7), so the hidden states take 1e-3 on
    99% of their elements and one quantization step (5e-3) on the rest."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, path = str(tmp_path / "bert_cls.onnx"), str(tmp_path / "bert_cls_q.onnx")
    onnx.save(with_classifier_head(onnx.load(MODEL)), src)
    quantize_dynamic(src, path, weight_type=QuantType.QUInt8)
    mq = onnx.load(path)
    assert any(n.op_type == "MatMulInteger" for n in mq.graph.node)
    assert not any(n.op_type == "MatMul" and "classifier_w" in n.input for n in mq.graph.node)   # the head is int8 too
    got = compile(mq, cache_dir=str(tmp_path / "cache")).run(feeds)
    assert list(got) == [o.name for o in mq.graph.output]
    plain, optimized = _ort(mq, feeds, optimize=False), _ort(mq, feeds, optimize=True)
    for want, other, (name, g) in zip(optimized, plain, got.items()):
        if name == "hidden":
            assert float((np.abs(g - want) > 1e-3).mean()) <= 0.01, name
            np.testing.assert_allclose(g, want, rtol=0, atol=5e-3, err_msg=name)
        else:
            np.testing.assert_allclose(g, want, rtol=0, atol=1e-3, err_msg=name)
        spread = float(np.abs(want - other).max())
        assert float(np.abs(g - other).max()) <= max(1e-3, 1.01 * spread), name
