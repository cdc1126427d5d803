"""TfIdfVectorizer over integer tokens: count the pool's n-grams in each row
by walking the flat trie of compiler/ops/text.py, then weigh the counts.
Modes: TF IDF TFIDF = 0..2."""
import numpy as np

from .jit import njit


@njit(cache=True, error_model="numpy")
def _child(ptr, keys, child, node, token):
    """The child of `node` reached by `token`, or -1."""
    lo, hi = ptr[node], ptr[node + 1]
    k = lo + np.searchsorted(keys[lo:hi], token)
    return child[k] if k < hi and keys[k] == token else -1


@njit(cache=True, error_model="numpy")
def tfidf(x, ptr, keys, child, column, lo, hi, max_skip, mode, weights, out):
    """out[r] = weighed counts of the n-grams (lo <= n <= hi) in row x[r],
    taken every `skip` tokens for skip in 1..max_skip + 1; unigrams count once."""
    counts = np.zeros(out.shape[1], np.float64)
    c = x.shape[1]
    for r in range(x.shape[0]):
        counts[:] = 0.0
        for skip in range(1, max_skip + 2):
            first = 2 if skip > 1 and lo < 2 else lo
            for s in range(c - skip * (first - 1)):
                node, i, n = 0, s, 1
                while n <= hi and i < c:
                    node = _child(ptr, keys, child, node, x[r, i])
                    if node < 0:
                        break
                    if n >= first and column[node] >= 0:
                        counts[column[node]] += 1.0
                    n += 1
                    i += skip
        for k in range(out.shape[1]):
            f = counts[k]
            if mode == 0:
                out[r, k] = f
            elif mode == 1:
                out[r, k] = weights[k] if f > 0 else 0.0
            else:
                out[r, k] = weights[k] * f
