"""ONNX -> IR. Loading and checking happen once per model; `to_ir` runs once per
specialisation (concrete input shapes, plus values of inputs that decide shapes)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import dtypes, ops  # noqa: F401  (ops fills the registry)
from .ir import Graph, Node, Value
from .ops.common import ShapeError
from .passes.fold import fold_node
from .registry import domain_key, lookup

SHAPE_ONLY_OPS = {"Shape", "Size"}   # their output depends on the input's shape, not its values
OPSET_TAG = "onnxjit-function-opset:"   # doc_string tag: an expanded body node's own opset


class UnsupportedModel(Exception):
    """Raised before any compiling, listing every node we cannot compile."""


class CompileError(Exception):
    pass


def load(model) -> tuple[onnx.ModelProto, bytes]:
    """A path, bytes or ModelProto -> (ModelProto with external data loaded, its bytes)."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (bytes, bytearray)):
        proto = onnx.load_model_from_string(bytes(model))
    elif isinstance(model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(model), load_external_data=True)
    else:
        raise TypeError(f"compile() takes a path, bytes or onnx.ModelProto, not {type(model).__name__}")
    return proto, proto.SerializeToString()


def opset_of(model: onnx.ModelProto, domain: str = "") -> int:
    for imp in model.opset_import:
        if domain_key(imp.domain) == domain_key(domain):
            return imp.version
    return 1


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """Check the model, inline its local functions, and expand unsupported
    standard ops that the ONNX schema defines as a function of other ops."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise CompileError(f"the model is not valid ONNX: {str(e).splitlines()[0]}") from None
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    return _expand_schema_functions(model)


def _expand_schema_functions(model, rounds: int = 4):
    """Replace unsupported standard ops by their ONNX function bodies (plain or
    context-dependent, which need the input types), a few rounds deep."""
    opset = opset_of(model)
    for _ in range(rounds):
        if not any(n.domain in ("", "ai.onnx") and lookup(n.op_type) is None for n in model.graph.node):
            return model    # nothing to expand: skip shape inference on the common path
        types = _value_types(model)
        changed, nodes = False, []
        for node in model.graph.node:
            if node.domain in ("", "ai.onnx") and lookup(node.op_type) is None:
                body = _function_body(node, opset, types)
                if body is not None:
                    nodes.extend(body)
                    changed = True
                    continue
            nodes.append(node)
        if not changed:
            return model
        model = onnx.ModelProto.FromString(model.SerializeToString())
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return model


def _value_types(model) -> dict:
    """name -> TypeProto, from shape inference (needed by context-dependent bodies)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 -- inference is best effort; the body then stays unexpanded
        inferred = model
    g = inferred.graph
    types = {v.name: v.type for v in list(g.input) + list(g.value_info) + list(g.output)}
    for init in g.initializer:
        types.setdefault(init.name, helper.make_tensor_type_proto(init.data_type, list(init.dims)))
    return types


def _schema_body(node, opset, types):
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return None
    if schema.has_function:
        return onnx.FunctionProto.FromString(schema.function_body.SerializeToString()), schema
    if schema.has_context_dependent_function:
        if any(i and i not in types for i in node.input):
            return None
        arg_types = [types[i].SerializeToString() if i else onnx.TypeProto().SerializeToString() for i in node.input]
        try:
            data = schema.get_context_dependent_function(node.SerializeToString(), arg_types)
        except Exception:   # noqa: BLE001 -- onnx refuses some inputs; the op stays unsupported
            return None
        return onnx.FunctionProto.FromString(data), schema
    return None


def _function_body(node, opset, types):
    """The nodes of a standard op's function body, renamed into this graph."""
    found = _schema_body(node, opset, types)
    if found is None:
        return None
    fn, schema = found
    defaults = {a.name: a.default_value for a in schema.attributes.values() if a.default_value.name}
    defaults.update({a.name: a for a in fn.attribute_proto})
    given = {a.name: a for a in node.attribute}
    prefix = f"_fn{id(node)}_"
    fn_opset = next((i.version for i in fn.opset_import if i.domain in ("", "ai.onnx")), opset)
    rename = dict(zip(fn.input, node.input))
    rename.update(zip(fn.output, node.output))
    out = []
    for sub in fn.node:
        n = onnx.NodeProto()
        n.CopyFrom(sub)
        n.name = prefix + sub.name
        n.input[:] = [rename.get(i, prefix + i) if i else "" for i in sub.input]
        n.output[:] = [rename.get(o, prefix + o) if o else "" for o in sub.output]
        attrs = []
        for a in n.attribute:
            if a.ref_attr_name:
                src = given.get(a.ref_attr_name) or defaults.get(a.ref_attr_name)
                if src is None:
                    continue
                b = onnx.AttributeProto()
                b.CopyFrom(src)
                b.name = a.name
                attrs.append(b)
            else:
                attrs.append(a)
        n.doc_string = f"{OPSET_TAG}{fn_opset}"   # the body's own opset, for normalisation
        del n.attribute[:]
        n.attribute.extend(attrs)
        out.append(n)
    produced = {o for n in out for o in n.output}
    if any(o and o not in produced for o in node.output):
        return None     # a context-dependent builder gave up (e.g. on symbolic dims): stays unsupported
    return out


def unsupported_nodes(model: onnx.ModelProto) -> list[str]:
    bad = []
    for n in model.graph.node:
        if lookup(n.op_type, n.domain) is None:
            dom = n.domain or "ai.onnx"
            bad.append(f"node {n.name!r}: {dom}::{n.op_type} (opset {opset_of(model, n.domain)})")
    return bad


@dataclass
class InputSpec:
    name: str
    dtype: str          # numpy dtype name
    shape: tuple        # ints, symbolic names (str) or None for unknown dims
    optional: bool      # has an initializer default


def signature(model: onnx.ModelProto):
    """Input specs (graph order) and output names."""
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedModel(f"input {vi.name!r}: only tensor inputs are supported")
        dt = dtypes.to_numpy(tt.elem_type)
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, dt.name, shape, vi.name in inits))
    return specs, [o.name for o in model.graph.output]


def shape_deciding_names(model: onnx.ModelProto) -> set:
    """Tensor names whose values (not only shapes) decide some tensor's shape:
    they reach a shape-deciding slot (Reshape's shape, Slice's starts...) along
    edges that are not Shape/Size."""
    producer = {o: n for n in model.graph.node for o in n.output}
    seen = set()

    def visit(name):
        if name in seen or not name:
            return
        seen.add(name)
        n = producer.get(name)
        if n is not None and n.op_type not in SHAPE_ONLY_OPS:
            for i in n.input:
                visit(i)

    for n in model.graph.node:
        opdef = lookup(n.op_type, n.domain)
        for slot in (opdef.value_inputs if opdef else ()):
            if slot < len(n.input):
                visit(n.input[slot])
    return seen


def value_specialised_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs whose values decide some tensor's shape: they become part
    of the specialisation key."""
    found = shape_deciding_names(model)
    return [i.name for i in model.graph.input if i.name in found]


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        elif isinstance(v, (onnx.GraphProto, onnx.SparseTensorProto)) or (isinstance(v, list) and v and not isinstance(v[0], (int, float, str))):
            raise ShapeError(f"attribute {a.name!r} of a kind we do not support")
        out[a.name] = v
    return out


def to_ir(model: onnx.ModelProto, feeds: dict) -> Graph:
    """Build the IR for concrete feeds: name -> (dtype, shape, value or None).
    Shapes are inferred node by node with the registry's rules, and every node
    whose inputs are known is folded on the spot (shape arithmetic)."""
    env: dict[str, Value] = {}
    graph_inputs = []
    for vi in model.graph.input:
        if vi.name in feeds:
            dt, shape, value = feeds[vi.name]
            v = Value(vi.name, np.dtype(dt), tuple(shape), value)
            env[vi.name] = v
            if value is None:
                graph_inputs.append(v)
    for init in model.graph.initializer:
        if init.name not in env:
            arr = numpy_helper.to_array(init)
            dtypes.to_numpy(init.data_type)
            env[init.name] = Value(init.name, arr.dtype, arr.shape, arr)
    nodes = []
    shape_math = shape_deciding_names(model)
    for proto in model.graph.node:
        where = f"node {proto.name!r} ({proto.op_type})"
        opdef = lookup(proto.op_type, proto.domain)
        try:
            ins = []
            for name in proto.input:
                if not name:
                    ins.append(None)
                elif name not in env:
                    raise ShapeError(f"input {name!r} is not defined before use")
                else:
                    ins.append(env[name])
            attrs = _attrs(proto)
            node_opset = opset_of(model, proto.domain)
            if proto.doc_string.startswith(OPSET_TAG) and proto.doc_string[len(OPSET_TAG):].isdigit():
                node_opset = int(proto.doc_string[len(OPSET_TAG):])
            node = Node(proto.op_type, ins, [], attrs, proto.name, proto.domain, node_opset,
                        shape_math=any(o in shape_math for o in proto.output))
            if opdef.normalize:
                opdef.normalize(node, node_opset)
            n_out = len(proto.output)
            if opdef.max_outputs is not None and sum(1 for o in proto.output if o) > opdef.max_outputs:
                raise ShapeError(f"only the first {opdef.max_outputs} output(s) are supported")
            node.outputs = [Value(o, None, ()) for o in proto.output[:n_out]]
            for v, (dt, shape) in zip(node.outputs, opdef.infer(node)):
                v.dtype, v.shape = np.dtype(dt), tuple(int(d) for d in shape)
        except dtypes.UnsupportedDType as e:
            raise UnsupportedModel(f"{where}: {e}") from None
        except (ShapeError, ValueError, TypeError, KeyError, IndexError) as e:
            raise CompileError(f"{where}: {e}") from None
        if not fold_node(node):
            nodes.append(node)
        for name, v in zip(proto.output, node.outputs):
            if name:
                env[name] = v
    outputs = []
    for o in model.graph.output:
        if o.name not in env:
            raise CompileError(f"graph output {o.name!r} is never produced")
        outputs.append(env[o.name])
    return Graph(graph_inputs, outputs, nodes)
