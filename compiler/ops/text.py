"""TfIdfVectorizer on integer tokens (string tokens run on the host:
runtime/host_strings.py).

The n-gram pool becomes a trie in flat arrays, so the kernel walks each
n-gram from its first token: node 0 is the root, node k's children are
child[ptr[k]:ptr[k + 1]] with tokens keys[...] in ascending order, and
column[k] is the output column of the n-gram ending at k (-1 if none)."""
from __future__ import annotations

import numpy as np

from runtime.host_strings import ngram_pool, tfidf_weights

from ..dtypes import UnsupportedDType
from ..registry import OPAQUE, register
from .common import ShapeError, attr

MODES = {"TF": 0, "IDF": 1, "TFIDF": 2}


def output_size(node) -> int:
    return max(int(i) for i in attr(node, "ngram_indexes")) + 1


def trie(node) -> dict:
    """The pool as flat trie arrays (ptr, keys, child, column), plus the gram
    lengths, skip count, weighting mode code and per-column weights."""
    pool = [int(t) for t in attr(node, "pool_int64s", [])]
    grams = ngram_pool(node.attrs, pool)
    nodes = {(): 0}
    for g in sorted(grams):
        for k in range(1, len(g) + 1):
            nodes.setdefault(g[:k], len(nodes))
    column = np.full(len(nodes), -1, np.int64)
    for g, c in grams.items():
        column[nodes[g]] = c
    edges = sorted((nodes[p[:-1]], p[-1], k) for p, k in nodes.items() if p)
    parents = np.array([e[0] for e in edges], np.int64)
    ptr = np.zeros(len(nodes) + 1, np.int64)
    np.cumsum(np.bincount(parents, minlength=len(nodes)), out=ptr[1:])
    weights = tfidf_weights(node.attrs, output_size(node))
    mode = attr(node, "mode")
    if mode not in MODES:
        raise ShapeError(f"unknown TfIdfVectorizer mode {mode!r}")
    return dict(ptr=ptr, keys=np.array([e[1] for e in edges], np.int64),
                child=np.array([e[2] for e in edges], np.int64), column=column,
                lo=int(attr(node, "min_gram_length")), hi=int(attr(node, "max_gram_length")),
                skip=int(attr(node, "max_skip_count", 0)), mode=MODES[mode], weights=weights)


def _tfidf(node):
    x = node.inputs[0]
    if attr(node, "pool_strings"):
        raise UnsupportedDType("TfIdfVectorizer on strings runs on the host")
    if x.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise UnsupportedDType(f"TfIdfVectorizer on {x.dtype} is not supported")
    if len(x.shape) not in (1, 2):
        raise ShapeError("TfIdfVectorizer takes [C] or [B, C]")
    trie(node)
    size = output_size(node)
    return [(np.float32, (size,) if len(x.shape) == 1 else (x.shape[0], size))]


register("TfIdfVectorizer", OPAQUE, _tfidf)
