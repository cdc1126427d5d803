"""A host plan, for models with control flow, sequences or optionals (like
onnxruntime's executor or TVM's Relay VM): steps over an environment
(name -> value) that are either compiled segments (runs of tensor nodes,
each its own compiled model) or host steps (If, Loop, Scan and SequenceMap
here, the rest in host_ops.HOST_OPS). Values are numpy arrays, lists
(sequences) and None (an empty optional). Control decisions are taken here;
tensor work stays compiled."""
from __future__ import annotations

import numpy as np

from .executable import Callable, CompiledModel, InputError, _check
from .host_ops import HOST_OPS, NON_TENSOR_OPS


class Segment:
    """A run of tensor nodes; `build(types)` compiles it for its inputs'
    ((dtype, rank), ...) into a model with .run(feeds) -> dict, kept here."""

    def __init__(self, inputs, outputs, build):
        self.inputs, self.outputs, self.build = list(inputs), list(outputs), build
        self.models: dict = {}

    def __call__(self, env: dict):
        feeds = {n: env[n] for n in self.inputs}
        key = tuple((a.dtype, a.ndim) for a in feeds.values())
        model = self.models.get(key)
        if model is None:
            model = self.models[key] = self.build(key)
        if isinstance(model, CompiledModel):   # built for these dtypes and ranks: skip the user-facing checks
            outs = model._call({n: _contiguous(a) for n, a in feeds.items()})
            env.update((n, v) for n, v in zip(model.output_names, outs))
        else:
            env.update(model.run(feeds))


def _contiguous(a) -> np.ndarray:
    """A C-contiguous array (numpy scalars, from indexing, become 0-d arrays)."""
    return a if isinstance(a, np.ndarray) and a.flags.c_contiguous else np.ascontiguousarray(a).reshape(np.shape(a))


class Step:
    """One host op: (domain, op_type), plain attrs, input/output names ("" when
    omitted), and its subgraphs (attribute name -> Graph) for control ops."""

    def __init__(self, op, attrs, inputs, outputs, graphs=None, version=0):
        self.op, self.attrs, self.inputs, self.outputs = op, attrs, list(inputs), list(outputs)
        self.graphs, self.version = dict(graphs or {}), version
        self.free = sorted({n for g in self.graphs.values() for n in g.free})   # read by its subgraphs
        if op[0] == "" and op[1] in CONTROL:
            self.fn = CONTROL[op[1]]
        else:
            fn = HOST_OPS.get(op) or NON_TENSOR_OPS[op]
            self.fn = lambda step, env, *args: fn(step.attrs, *args)

    def __call__(self, env: dict):
        args = [env[n] if n else None for n in self.inputs]
        outs = self.fn(self, env, *args)
        env.update((n, v) for n, v in zip(self.outputs, outs) if n)

    def sub(self, name: str, env: dict) -> "Bound":
        return Bound(self.graphs[name], env)


class Graph:
    """A (sub)graph: formal inputs, outputs, steps, constants (initializers and
    Constant nodes) and `free`: the names it reads from enclosing scopes."""

    def __init__(self, inputs, outputs, steps, consts, free):
        self.inputs, self.outputs, self.steps = list(inputs), list(outputs), list(steps)
        self.consts, self.free = dict(consts), list(free)

    def run(self, bound: dict, outer: dict) -> list:
        env = {n: outer[n] for n in self.free}
        env.update(self.consts)
        env.update(bound)
        for step in self.steps:
            step(env)
        return [env[o] for o in self.outputs]


class Bound:
    """A subgraph with its enclosing environment: body(*inputs) -> outputs."""

    def __init__(self, graph: Graph, outer: dict):
        self.graph, self.outer = graph, outer
        self.n_outputs = len(graph.outputs)

    def __call__(self, *args):
        return self.graph.run(dict(zip(self.graph.inputs, args)), self.outer)


# control ops: fn(step, env, *inputs) -> outputs ---------------------------------

def _scalar(x) -> np.generic:
    return np.asarray(x).reshape(-1)[0]


def _if(step, env, cond):
    return step.sub("then_branch" if bool(_scalar(cond)) else "else_branch", env)()


def _loop(step, env, trip=None, cond=None, *state):
    body = step.sub("body", env)
    n = None if trip is None else int(_scalar(trip))
    go = True if cond is None else bool(_scalar(cond))
    state, scans, i = list(state), [], 0
    while go and (n is None or i < n):
        outs = body(np.array(i, np.int64), np.array(go), *state)
        go = bool(_scalar(outs[0]))
        state = list(outs[1:1 + len(state)])
        scans.append(outs[1 + len(state):])
        i += 1
    k = body.n_outputs - 1 - len(state)
    return state + [_stack([s[j] for s in scans], 0) for j in range(k)]


def _stack(slices, axis):
    """Scan outputs stacked along `axis` (none: an empty float tensor, as the type is unknown here)."""
    if not slices:
        return np.zeros((0,), np.float32)
    y = np.stack([np.asarray(s) for s in slices])
    return np.moveaxis(y, 0, axis % y.ndim) if axis else y


def _scan_run(body, attrs, states, xs):
    """Scan (opset 9+) over scan inputs `xs`: slices along each input's axis,
    forward or reversed; outputs stacked along theirs, maybe reversed."""
    m, n = len(xs), len(states)
    k = body.n_outputs - n
    axes = [a % x.ndim for a, x in zip(attrs.get("scan_input_axes", [0] * m), xs)]
    dirs = attrs.get("scan_input_directions", [0] * m)
    steps = {x.shape[a] for x, a in zip(xs, axes)}
    if len(steps) != 1:
        raise ValueError(f"Scan: scan inputs have different lengths {sorted(steps)}")
    t_len = steps.pop()
    outs = [[] for _ in range(k)]
    for t in range(t_len):
        slices = [np.asarray(np.take(x, t_len - 1 - t if d else t, axis=a)) for x, a, d in zip(xs, axes, dirs)]
        res = body(*states, *slices)
        states = list(res[:n])
        for o, v in zip(outs, res[n:]):
            o.append(v)
    out_dirs = attrs.get("scan_output_directions", [0] * k)
    out_axes = attrs.get("scan_output_axes", [0] * k)
    return states + [_stack(o[::-1] if d else o, a) for o, d, a in zip(outs, out_dirs, out_axes)]


def _scan(step, env, *inputs):
    body, m = step.sub("body", env), step.attrs["num_scan_inputs"]
    if step.version >= 9:
        return _scan_run(body, step.attrs, list(inputs[:len(inputs) - m]), list(inputs[len(inputs) - m:]))
    # opset 8: a leading sequence_lens input and a batch axis 0 before the scan axis
    lens, rest = inputs[0], inputs[1:]
    states, xs = rest[:len(rest) - m], rest[len(rest) - m:]
    if lens is not None and np.any(np.asarray(lens) != xs[0].shape[1]):
        raise NotImplementedError("Scan-8 with sequence_lens shorter than the scan axis")
    attrs = {"scan_input_directions": step.attrs.get("directions", [0] * m)}
    rows = [_scan_run(body, attrs, [s[b] for s in states], [x[b] for x in xs]) for b in range(xs[0].shape[0])]
    return [np.stack(col) for col in zip(*rows)]


def _sequence_map(step, env, seq, *extra):
    body = step.sub("body", env)
    outs = [[] for _ in range(body.n_outputs)]
    for i in range(len(seq)):
        args = [x[i] if isinstance(x, list) else x for x in extra]
        for o, v in zip(outs, body(seq[i], *args)):
            o.append(v)
    return outs


CONTROL = {"If": _if, "Loop": _loop, "Scan": _scan, "SequenceMap": _sequence_map}


class PlanModel(Callable):
    """The user's callable for a planned model, with CompiledModel's API.

    `inputs`: specs as CompiledModel's, plus "kind" ("tensor", "sequence",
    "optional") and "elem" (the element's spec) for sequences and optionals."""

    def __init__(self, inputs, outputs, graph: Graph):
        self.inputs, self.output_names, self.graph = inputs, list(outputs), graph

    @property
    def stats(self) -> dict:
        """Specialisations built and loaded, over all segments' compiled models."""
        total, todo = {"built": 0, "loaded": 0}, [self.graph]
        while todo:
            for step in todo.pop().steps:
                todo.extend(getattr(step, "graphs", {}).values())
                for model in getattr(step, "models", {}).values():
                    for k in total:
                        total[k] += model.stats.get(k, 0)
        return total

    def _checked(self, spec, a, dims):
        return check_value(spec, a, dims)

    def _call(self, feeds: dict):
        for s in self.inputs:
            if s.get("kind") == "optional":
                feeds.setdefault(s["name"], None)
        return tuple(self.graph.run(feeds, {}))

    def warm(self, feeds: dict):
        return self._call(self._bind((), dict(feeds)))


def check_value(spec, a, dims):
    """A tensor checked as CompiledModel does; a sequence as a list of checked
    tensors (each with its own dims); an optional as None or its element; a map as a dict."""
    kind = spec.get("kind", "tensor")
    if kind == "optional":
        return None if a is None else check_value(spec["elem"], a, dims)
    if kind == "sequence":
        if not isinstance(a, (list, tuple)):
            raise InputError(f"input {spec['name']!r}: expected a sequence (a list of arrays), got {type(a).__name__}")
        return [check_value(spec["elem"], x, {}) for x in a]
    if kind == "map":
        if not isinstance(a, dict):
            raise InputError(f"input {spec['name']!r}: expected a map (a dict), got {type(a).__name__}")
        return a
    if spec["dtype"] == "object":
        a = np.asarray(a, dtype=object)
    return _check(spec, a, dims)
