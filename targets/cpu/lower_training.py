"""CPU lowerings of the training domain onto targets/cpu/kernels/training.py."""
from __future__ import annotations

from compiler.ir import Value
from compiler.ops.common import ShapeError, attr
from compiler.ops.training import MOMENTUM_MODES, STATES, groups
from compiler.registry import TRAINING

from . import source
from .lower import lower

# op -> its float attributes in the kernel's argument order, with their defaults
COEFFICIENTS = {
    "Adagrad": (("decay_factor", 0.0), ("epsilon", 1e-6), ("norm_coefficient", 0.0)),
    "Adam": (("alpha", 0.9), ("beta", 0.999), ("epsilon", 1e-6), ("norm_coefficient", 0.0),
             ("norm_coefficient_post", 0.0)),
    "Momentum": (("alpha", None), ("beta", None), ("norm_coefficient", None)),
}


def _flat(em, v) -> str:
    return f"{em[v]}.reshape({v.size})"


@lower("Adagrad", "Adam", "Momentum", domain=TRAINING)
def _optimizer(node, em):
    n, k = groups(node), STATES[node.op]
    coeffs = []
    for name, default in COEFFICIENTS[node.op]:
        value = attr(node, name, default)
        if value is None:
            raise ShapeError(f"{node.op}: attribute {name!r} is required")
        coeffs.append(source.num(float(value)))
    if node.op == "Momentum":
        mode = attr(node, "mode", "standard")
        if mode not in MOMENTUM_MODES:
            raise NotImplementedError(f"Momentum mode {mode!r}")
        coeffs.append(source.num(bool(MOMENTUM_MODES[mode])))
    r, t = (f"{em[v]}.reshape(1)" for v in node.inputs[:2])
    L = em.lib("training")
    outs = list(node.outputs) + [None] * (n * (1 + k) - len(node.outputs))
    for i in range(n):
        ins = [node.inputs[2 + j * n + i] for j in range(2 + k)]
        res = []
        for j in range(1 + k):
            v = outs[j * n + i]
            if v is None:      # an omitted output still needs a buffer
                v = Value("", ins[0].dtype, ins[0].shape)
            res.append(f"{em.alloc(v)}.reshape({v.size})")
        em.emit(f"{L}.{node.op.lower()}({r}, {t}, {', '.join(_flat(em, v) for v in ins)}, "
                f"{', '.join(res)}, {', '.join(coeffs)})")
