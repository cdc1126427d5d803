"""ONNX -> IR. Loading and checking happen once per model; `to_ir` runs once per
specialisation (concrete input shapes, plus values of inputs that decide shapes)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import dtypes, ops  # noqa: F401  (ops fills the registry)
from .host_attrs import node_attrs
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
    context-dependent, which need the input types), a few rounds deep, in
    subgraphs too. Host ops (control flow, sequences) stay: the plan runs them."""
    for _ in range(rounds):
        if not any(_expandable(n) for g in _graphs(model.graph) for n in g.node):
            return model    # nothing to expand: skip shape inference on the common path
        types = _value_types(model)
        model = onnx.ModelProto.FromString(model.SerializeToString())
        if not _expand_graph(model, model.graph, types):
            return model
    return model


def _expandable(node) -> bool:
    """An op we lack that onnx defines (any of its domains, ai.onnx.preview included), not run by the plan."""
    from .partition import is_host_op
    return lookup(node.op_type, node.domain) is None and onnx.defs.has(node.op_type, node.domain) \
        and not is_host_op(node)


def _graphs(graph):
    """The graph and its subgraphs (If branches, Loop bodies...), depth first."""
    from .partition import subgraphs
    yield graph
    for n in graph.node:
        for _, g in subgraphs(n):
            yield from _graphs(g)


def _expand_graph(model, graph, types) -> bool:
    from .partition import subgraphs
    changed, nodes = False, []
    for node in graph.node:
        for _, g in subgraphs(node):
            changed |= _expand_graph(model, g, types)
        if _expandable(node):
            body = _function_body(node, opset_of(model, node.domain), opset_of(model), types)
            if body is not None:
                nodes.extend(body)
                changed = True
                continue
        nodes.append(node)
    if changed:
        new = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
        del graph.node[:]
        graph.node.extend(new)
    return changed


def _value_types(model) -> dict:
    """name -> TypeProto, from shape inference (needed by context-dependent bodies)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 -- inference is best effort; the body then stays unexpanded
        inferred = model
    types = {}
    for g in _graphs(inferred.graph):
        types.update({v.name: v.type for v in list(g.input) + list(g.value_info) + list(g.output)})
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


def _function_body(node, opset, std_opset, types):
    """The nodes of an op's schema function body, renamed into this graph. A body
    importing no standard opset (ai.onnx.preview's) runs at the model's `std_opset`."""
    found = _schema_body(node, opset, types)
    if found is None:
        return None
    fn, schema = found
    defaults = {a.name: a.default_value for a in schema.attributes.values() if a.default_value.name}
    defaults.update({a.name: a for a in fn.attribute_proto})
    given = {a.name: a for a in node.attribute}
    prefix = f"_fn{id(node)}_"
    fn_opset = next((i.version for i in fn.opset_import if i.domain in ("", "ai.onnx")), std_opset)
    rename = dict(zip(fn.input, node.input))
    rename.update(zip(fn.output, node.output))
    out = []
    for sub in fn.node:
        n = onnx.NodeProto()
        n.CopyFrom(sub)
        n.name = prefix + sub.name
        name = lambda i: rename.get(i, prefix + i) if i else ""   # noqa: E731
        n.input[:] = [name(i) for i in sub.input]
        n.output[:] = [name(o) for o in sub.output]
        attrs = []
        for a in n.attribute:
            for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs:
                _rename_graph(g, name)   # a body's If branches read the body's names
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


def _rename_graph(g, name):
    """Every name in a subgraph (and deeper) through `name`."""
    for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
        v.name = name(v.name)
    for n in g.node:
        n.input[:] = [name(i) for i in n.input]
        n.output[:] = [name(o) for o in n.output]
        for a in n.attribute:
            for sg in [a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs:
                _rename_graph(sg, name)


def unsupported_nodes(model: onnx.ModelProto, graph=None, where: str = "") -> list[str]:
    """Nodes we can neither compile nor run on the host, in subgraphs too."""
    from .partition import is_host_op, subgraphs
    bad = []
    for n in (model.graph if graph is None else graph).node:
        if lookup(n.op_type, n.domain) is None and not is_host_op(n):
            dom = n.domain or "ai.onnx"
            bad.append(f"{where}node {n.name!r}: {dom}::{n.op_type} (opset {opset_of(model, n.domain)})")
        for attr, g in subgraphs(n):
            bad += unsupported_nodes(model, g, f"{where}node {n.name!r} ({n.op_type}) {attr}: ")
    return bad


@dataclass
class InputSpec:
    name: str
    dtype: str          # numpy dtype name ("object" for strings); a sequence's or optional's element's
    shape: tuple        # ints, symbolic names (str) or None for unknown dims
    optional: bool      # has an initializer default, or is an optional
    kind: str = "tensor"    # or "sequence", "optional", "map"
    elem: "InputSpec | None" = None   # a sequence's or an optional's element


def signature(model: onnx.ModelProto):
    """Input specs (graph order) and output names."""
    inits = {i.name for i in model.graph.initializer}
    return [_spec(vi.name, vi.type, vi.name in inits) for vi in model.graph.input], \
        [o.name for o in model.graph.output]


def _spec(name, tp, has_default) -> InputSpec:
    which = tp.WhichOneof("value")
    if which in ("sequence_type", "optional_type"):
        elem = _spec(name, getattr(tp, which).elem_type, False)
        kind = which.split("_")[0]
        return InputSpec(name, elem.dtype, elem.shape, has_default or kind == "optional", kind, elem)
    if which == "map_type":     # a dict, for host ops (DictVectorizer)
        return InputSpec(name, "object", None, has_default, "map")
    if which != "tensor_type":
        raise UnsupportedModel(f"input {name!r}: only tensor, sequence, optional and map inputs are supported")
    tt = tp.tensor_type
    dt = "object" if tt.elem_type == onnx.TensorProto.STRING else dtypes.to_numpy(tt.elem_type).name
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return InputSpec(name, dt, shape, has_default)


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
            attrs = node_attrs(proto)
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
