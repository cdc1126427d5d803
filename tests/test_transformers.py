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


def test_dynamically_quantized_bert_matches_onnxruntime(feeds, tmp_path):
    """uint8 activations and weights. The issue asks atol 1e-3; onnxruntime does
    not meet it against itself: with its graph optimisations on and off, the same
    quantized model differs by ~2e-2 (a LayerNorm output one float32 ulp apart
    moves a few values across a quantization step, and each step moves a hidden
    unit by ~1e-2). So we ask to be as close to onnxruntime (either mode) as its two
    modes are to each other, and never further than 1e-3 where they agree."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    path = str(tmp_path / "bert_q.onnx")
    quantize_dynamic(MODEL, path, weight_type=QuantType.QUInt8)
    mq = onnx.load(path)
    assert any(n.op_type == "MatMulInteger" for n in mq.graph.node)
    got = compile(mq, cache_dir=str(tmp_path / "cache")).run(feeds)
    plain, optimized = _ort(mq, feeds, optimize=False), _ort(mq, feeds, optimize=True)
    for want, other, (name, g) in zip(plain, optimized, got.items()):
        spread = float(np.abs(want - other).max())
        assert spread < 5e-2, name     # the quantization noise floor, not a broken model
        nearest = min(float(np.abs(g - want).max()), float(np.abs(g - other).max()))
        assert nearest <= max(1e-3, spread), (name, nearest, spread)
        assert float(np.abs(g - want).mean()) <= max(1e-4, 1.5 * float(np.abs(want - other).mean())), name
