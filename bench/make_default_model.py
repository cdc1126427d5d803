"""Writes compiler/models/small_cnn.onnx: the model `onnxjit run` uses by default.
A small CNN (Conv, Relu, MaxPool, BatchNormalization, GlobalAveragePool, Gemm,
Softmax) with seeded random weights, built with onnx.helper."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(seed=0):
    rng = np.random.default_rng(seed)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)  # noqa: E731
    inits = [w("c1w", 8, 1, 3, 3), w("c1b", 8), w("c2w", 16, 8, 3, 3), w("c2b", 16),
             numpy_helper.from_array(np.abs(rng.standard_normal(16)).astype(np.float32) + 0.5, "bns"),
             w("bnb", 16), w("bnm", 16),
             numpy_helper.from_array(np.abs(rng.standard_normal(16)).astype(np.float32) + 0.5, "bnv"),
             w("fcw", 10, 16), w("fcb", 10)]
    nodes = [
        helper.make_node("Conv", ["image", "c1w", "c1b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "bns", "bnb", "bnm", "bnv"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fcw", "fcb"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"]),
    ]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnxjit")
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(__file__), "..", "compiler", "models", "small_cnn.onnx")
    onnx.save(build(), out)
    print("wrote", os.path.normpath(out))
