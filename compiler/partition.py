"""Models with control flow, sequences, optionals or strings -> a host plan
(runtime.plan). Nodes that must run on the host (If/Loop/Scan/SequenceMap,
the ops of runtime.host_ops, any node reading or making a sequence, an
optional or a string tensor) become host steps; each maximal run of the
other nodes becomes a segment, a standalone ONNX model compiled by the
ordinary path for the dtypes and ranks its inputs come with. A segment also
ends after a node whose output shape depends on data (NonZero...), so that
output may feed anything. Subgraphs are planned the same way, recursively."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from runtime.host_ops import HOST_OPS, NON_TENSOR_OPS
from runtime.plan import CONTROL, Graph, PlanModel, Segment, Step

from . import dtypes, frontend
from .registry import DATA_DEPENDENT_SHAPE, domain_key, lookup

NON_TENSOR = {"sequence", "optional", "string", "map"}
# Output kinds of host ops when shape inference says nothing.
OUT_KIND = {op: "sequence" for op in ("SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase",
                                      "SplitToSequence", "SequenceMap")}
OUT_KIND.update({"Optional": "optional", "SequenceAt": "tensor", "SequenceLength": "tensor",
                 "ConcatFromSequence": "tensor", "OptionalHasElement": "tensor"})
TYPE_KINDS = {"sequence_type": "sequence", "optional_type": "optional", "map_type": "map"}


def op_key(node) -> tuple:
    return domain_key(node.domain), node.op_type


def is_host_op(node) -> bool:
    """An op that always runs on the host (whatever its operands)."""
    key = op_key(node)
    return (key[0] == "" and key[1] in CONTROL) or key in HOST_OPS


def type_kind(tp) -> str | None:
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return "string" if tp.tensor_type.elem_type == TensorProto.STRING else "tensor"
    return TYPE_KINDS.get(which)


def needs_plan(model: onnx.ModelProto) -> bool:
    """Cheap: does the model need a host plan? (No shape inference on the common path.)"""
    g = model.graph
    if any(type_kind(v.type) in NON_TENSOR for v in g.input) or \
            any(type_kind(v.type) in ("sequence", "optional") for v in g.output):
        return True
    used = {i for n in g.node for i in n.input}
    return any(is_host_op(n) or (n.op_type in DATA_DEPENDENT_SHAPE and any(o in used for o in n.output))
               for n in g.node)


def subgraphs(node):
    """(attribute name, GraphProto) of a node's graph attributes."""
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.name, a.g
        for g in a.graphs:
            yield a.name, g


def _all_types(model) -> dict:
    """name -> TypeProto from shape inference, across the graph and its subgraphs."""
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 -- best effort: kinds then come from the op tables
        pass
    types, todo = {}, [model.graph]
    while todo:
        g = todo.pop()
        for v in list(g.input) + list(g.value_info) + list(g.output):
            if v.type.WhichOneof("value"):
                types.setdefault(v.name, v.type)
        for n in g.node:
            todo.extend(sg for _, sg in subgraphs(n))
    return types


def _attr(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode("utf-8", "replace") for x in v]
    return v


def constant_value(node) -> np.ndarray:
    a = node.attribute[0]
    v = _attr(a)
    if a.name in ("value_string", "value_strings"):
        return np.array(v, dtype=object)
    return np.asarray(v, {"value_float": np.float32, "value_floats": np.float32,
                          "value_int": np.int64, "value_ints": np.int64}.get(a.name))


class Planner:
    """Builds the plan of one model; `compile_segment(ModelProto)` compiles a segment."""

    def __init__(self, model: onnx.ModelProto, compile_segment):
        self.model, self.compile_segment = model, compile_segment
        self.types = _all_types(model)
        self.opsets = {domain_key(i.domain): i.version for i in model.opset_import}

    # kinds --------------------------------------------------------------------------
    def kind(self, name, hint=None):
        tp = self.types.get(name)
        return (type_kind(tp) if tp is not None else None) or hint or "tensor"

    def out_kinds(self, node, kinds) -> list:
        if domain_key(node.domain) == "ai.onnx.ml" and lookup(node.op_type, node.domain) is not None and \
                any(a.name == "classlabels_strings" and a.strings for a in node.attribute):
            return ["label"] + [self.kind(o) for o in node.output[1:]]   # string labels: compiled as indices
        first = kinds.get(node.input[0]) if node.input and node.input[0] else None
        if node.op_type == "Identity" and first == "label":
            return ["label"]
        hint = OUT_KIND.get(node.op_type)
        if node.op_type in ("Identity", "OptionalGetElement") and first in NON_TENSOR:
            hint = first if node.op_type == "Identity" else None
        return [self.kind(o, hint) for o in node.output]

    def is_host(self, node, kinds) -> bool:
        return is_host_op(node) or any(kinds.get(n) in NON_TENSOR for n in list(node.input) + list(node.output) if n)

    # graphs -------------------------------------------------------------------------
    def graph(self, g, outer_kinds: dict, outer_consts: dict, input_hints=()) -> Graph:
        """Plan one graph. `outer_consts`: name -> (value, proto) of constants in
        enclosing scopes (initializers and Constant nodes), copied into segments."""
        kinds, consts, local = dict(outer_kinds), dict(outer_consts), {}
        formal = [v.name for v in g.input]
        for v, hint in zip(g.input, list(input_hints) + [None] * len(g.input)):
            kinds[v.name] = (type_kind(v.type) if v.type.WhichOneof("value") else None) or hint or "tensor"
        for t in g.initializer:
            local[t.name] = numpy_helper.to_array(t)
            kinds[t.name] = "string" if t.data_type == TensorProto.STRING else "tensor"
            if t.name not in formal:      # an input's default may be overridden: not a constant
                consts[t.name] = (local[t.name], t)
        raw, run = [], []

        def flush():
            if run:
                raw.append(("segment", list(run)))
                run.clear()

        for node in g.node:
            if node.op_type == "Constant" and domain_key(node.domain) == "":
                value = local[node.output[0]] = constant_value(node)
                consts[node.output[0]] = (value, node)
                kinds[node.output[0]] = "string" if value.dtype == object else "tensor"
                continue
            kinds.update(zip(node.output, self.out_kinds(node, kinds)))
            if self.is_host(node, kinds):
                flush()
                raw.append(("host", self.host_step(node, kinds, consts)))
            else:
                run.append(node)
                if node.op_type in DATA_DEPENDENT_SHAPE:
                    flush()
        flush()
        steps, needed = [], {o.name for o in g.output}
        for what, item in reversed(raw):
            if what == "host":
                steps.append(item)
                needed |= {n for n in item.inputs if n} | set(item.free)
            else:
                seg = self.segment(item, needed, consts)
                if seg.outputs:
                    steps.append(seg)
                    needed |= set(seg.inputs)
        steps.reverse()
        defined = set(formal) | set(local) | {o for s in steps for o in s.outputs}
        free = sorted(needed - defined)
        return Graph(formal, [o.name for o in g.output], steps, local, free)

    def host_step(self, node, kinds, consts) -> Step:
        key = op_key(node)
        if not (is_host_op(node) or key in NON_TENSOR_OPS):
            raise frontend.UnsupportedModel(f"node {node.name!r}: {key[0] or 'ai.onnx'}::{key[1]} on a sequence, "
                                   "an optional or a string is not supported")
        graphs = {}
        hints = {"Loop": ["tensor", "tensor"] + [kinds.get(i) for i in node.input[2:]],
                 "Scan": [kinds.get(i) for i in node.input]}.get(node.op_type, ())
        for name, g in subgraphs(node):
            graphs[name] = self.graph(g, kinds, consts, hints)
        attrs = {a.name: _attr(a) for a in node.attribute
                 if a.type not in (AttributeProto.GRAPH, AttributeProto.GRAPHS, AttributeProto.TYPE_PROTO)}
        version = self.opsets.get(key[0], 1)
        tag = node.doc_string[len(frontend.OPSET_TAG):] if node.doc_string.startswith(frontend.OPSET_TAG) else ""
        return Step(key, attrs, node.input, node.output, graphs, int(tag) if tag.isdigit() else version)

    def segment(self, nodes, needed, consts) -> Segment:
        produced = [o for n in nodes for o in n.output if o]
        reads = list(dict.fromkeys(i for n in nodes for i in n.input if i and i not in produced))
        inputs = [i for i in reads if i not in consts]
        embedded = [consts[i][1] for i in reads if i in consts]
        outputs = [o for o in produced if o in needed]
        model = self.model

        def build(types):
            ins = [helper.make_tensor_value_info(n, dtypes.from_numpy(dt), [None] * rank)
                   for n, (dt, rank) in zip(inputs, types)]
            outs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, []) for o in outputs]
            inits = [p for p in embedded if isinstance(p, TensorProto)]
            body = [p for p in embedded if isinstance(p, onnx.NodeProto)] + list(nodes)
            g = helper.make_graph(body, "segment", ins, outs, initializer=inits)
            seg = helper.make_model(g, opset_imports=list(model.opset_import), ir_version=model.ir_version)
            return self.compile_segment(seg)

        return Segment(inputs, outputs, build)


def plan_model(model: onnx.ModelProto, compile_segment) -> PlanModel:
    root = Planner(model, compile_segment).graph(model.graph, {}, {})
    if root.free:
        raise frontend.CompileError(f"values used but never defined: {root.free}")
    specs, outputs = frontend.signature(model)
    return PlanModel([spec_dict(s) for s in specs], outputs, root)


def spec_dict(s) -> dict:
    d = {"name": s.name, "dtype": s.dtype, "shape": s.shape, "optional": s.optional, "kind": s.kind}
    if s.elem is not None:
        d["elem"] = spec_dict(s.elem)
    return d
