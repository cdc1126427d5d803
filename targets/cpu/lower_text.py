"""CPU lowering of TfIdfVectorizer (integer tokens) onto targets/cpu/kernels/text.py."""
from __future__ import annotations

from compiler.ops import text as text_ops

from . import source
from .lower import lower


@lower("TfIdfVectorizer")
def _tfidf(node, em):
    x, out = node.inputs[0], node.outputs[0]
    t = text_ops.trie(node)
    rows = 1 if len(x.shape) == 1 else x.shape[0]
    res = em.alloc(out)
    arrays = ", ".join(em.const(t[k]) for k in ("ptr", "keys", "child", "column"))
    em.emit(f"{em.lib('text')}.tfidf({em[x]}.reshape({source.ints((rows, x.shape[-1]))}), {arrays}, "
            f"{source.num(t['lo'])}, {source.num(t['hi'])}, {source.num(t['skip'])}, {source.num(t['mode'])}, "
            f"{em.const(t['weights'])}, {res}.reshape({source.ints((rows, out.shape[-1]))}))")
