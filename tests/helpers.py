"""Small model builders for the unit tests."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    """inputs/outputs: [(name, elem_type, shape)]; inits: {name: ndarray}."""
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains])
    onnx.checker.check_model(m)
    return m


def conv_epilogue_model(conv, ins, inits, out_shape, epi):
    """A model of one Conv node (output "y") and the epilogue kind `epi` the fusion pass folds
    into it, its output "z": "res" (an Add of input "r"), "relu", "res_relu", "clip" (0, 6),
    "hardswish", "silu" (x * Sigmoid(x)), else none. Returns (model, inputs)."""
    nodes, ins, inits, last = [conv], list(ins), dict(inits), "y"
    if epi.startswith("res"):
        ins.append(("r", F, list(out_shape)))
        nodes.append(helper.make_node("Add", ["y", "r"], ["a"]))
        last = "a"
    if epi.endswith("relu"):
        nodes.append(helper.make_node("Relu", [last], ["z"]))
    elif epi == "clip":
        inits.update(lo=np.array(0, np.float32), hi=np.array(6, np.float32))
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["z"]))
    elif epi == "hardswish":
        nodes.append(helper.make_node("HardSwish", [last], ["z"]))
    elif epi == "silu":
        nodes += [helper.make_node("Sigmoid", [last], ["sg"]), helper.make_node("Mul", [last, "sg"], ["z"])]
    else:
        nodes.append(helper.make_node("Identity", [last], ["z"]))
    return model(nodes, ins, [("z", F, list(out_shape))], inits, opset=17), ins


def dense_conv_model(n, c, h, w, m, k, s, pads, epi, rng):
    """conv_epilogue_model of a k x k group-1 Conv with bias of input (n, c, h, w), m filters,
    stride s and pads (top, left, bottom, right), seeded weights from rng."""
    oh = (h + pads[0] + pads[2] - k) // s + 1
    ow = (w + pads[1] + pads[3] - k) // s + 1
    inits = {"w": (rng.standard_normal((m, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32),
             "b": rng.standard_normal(m).astype(np.float32)}
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[s, s], pads=list(pads))
    return conv_epilogue_model(conv, [("x", F, [n, c, h, w])], inits, (n, m, oh, ow), epi)


def reference(m, feeds):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(m).run(None, feeds)
