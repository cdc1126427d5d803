"""String and map ops, run on the host in plain Python.

Strings are no type our Numba kernels take, so these ops run here, over numpy
object arrays of str (and dicts for maps). Numeric tensor work stays compiled:
TfIdfVectorizer on integers and LabelEncoder between numbers have kernels;
their entries here serve string inputs or outputs only.

OPS (always here) and NON_TENSOR_OPS (here only on strings) map
(domain, op_type) to fn(attrs, *inputs) -> tuple of outputs, where
attrs are the node's attributes as plain Python values (compiler/host_attrs.py
decodes them: str for strings, numpy arrays for tensors). Where the ONNX spec
and onnx.reference differ, these follow the spec and onnxruntime (see each op).
"""
from __future__ import annotations

import operator
import re

import numpy as np

ML = "ai.onnx.ml"


def _strings(values, shape) -> np.ndarray:
    """A list of str as an object array of `shape` (never a numpy str_ array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def _elementwise(fn, *arrays) -> np.ndarray:
    """fn over broadcast elements, as an object array (also for 0-d inputs)."""
    return np.asarray(np.frompyfunc(fn, len(arrays), 1)(*arrays), dtype=object)


def string_concat(attrs, x, y):
    return (_elementwise(operator.add, x, y),)


def equal(attrs, x, y):
    """Equal on strings (numbers stay compiled)."""
    return (_elementwise(operator.eq, x, y).astype(bool),)


def regex_full_match(attrs, x):
    """ONNX asks for RE2 syntax; this is Python's re (re.fullmatch) with
    re.ASCII, so \\d \\w \\s \\b are ASCII-only as in RE2. Differences: re
    accepts what RE2 rejects (backreferences, lookaround); RE2's \\z, \\pN and
    \\p{Greek} classes are errors in re; (?i) folds only ASCII letters here
    (RE2 folds Unicode); \\s also matches \\v; $ (without (?m)) also matches
    before a final newline in re, never in RE2."""
    try:
        regex = re.compile(attrs["pattern"], re.ASCII)
    except re.error as e:
        raise ValueError(f"RegexFullMatch: invalid pattern: {e}") from None
    return (_elementwise(lambda s: regex.fullmatch(s) is not None, x).astype(bool),)


def string_split(attrs, x):
    """Y: x's shape + [most parts], padded with ""; Z: the part counts. No (or
    an empty) delimiter splits on whitespace runs, as Python's str.split."""
    sep = attrs.get("delimiter") or None
    maxsplit = int(attrs.get("maxsplit", -1))
    parts = [s.split(sep, maxsplit) for s in x.reshape(-1).tolist()]
    counts = np.array([len(p) for p in parts], np.int64).reshape(x.shape)
    width = max((len(p) for p in parts), default=0)
    flat = [q for p in parts for q in p + [""] * (width - len(p))]
    return _strings(flat, x.shape + (width,)), counts


CASES = {"NONE": lambda s: s, "LOWER": str.lower, "UPPER": str.upper}


def string_normalizer(attrs, x):
    """Drops the elements that are stopwords, then changes case ([C] or [1, C]).
    As the spec and onnxruntime (onnx.reference differs): stopwords are whole
    elements (reference: space-separated words inside elements), other empty
    strings stay (reference drops them), accents stay (reference strips them)."""
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise ValueError(f"StringNormalizer takes [C] or [1, C], not {list(x.shape)}")
    action = attrs.get("case_change_action", "NONE")
    if action not in CASES:
        raise ValueError(f"StringNormalizer: unknown case_change_action {action!r}")
    sensitive = bool(attrs.get("is_case_sensitive", 0))
    fold = (lambda s: s) if sensitive else str.lower
    stops = {fold(w) for w in attrs.get("stopwords", [])}
    kept = [CASES[action](s) for s in x.reshape(-1).tolist() if fold(s) not in stops] or [""]
    return (_strings(kept, (len(kept),) if x.ndim == 1 else (1, len(kept))),)


# ai.onnx.ml ------------------------------------------------------------------------------

def _first(attrs, *names):
    """(name, value) of the first attribute given, else (None, None)."""
    for n in names:
        if attrs.get(n) is not None:
            return n, attrs[n]
    return None, None


def _lookup(x, table: dict, default, dtype) -> np.ndarray:
    """table[element] (default when missing) for each element of x; a NaN key
    matches NaN elements (a dict lookup alone would not)."""
    nan = next((v for k, v in table.items() if k != k), default)
    got = [table.get(k, nan if k != k else default) for k in x.reshape(-1).tolist()]
    if dtype == object:
        return _strings(got, x.shape)
    return np.array(got, dtype=dtype).reshape(x.shape)


def _plain(values) -> list:
    """Attribute values as Python scalars (dict keys that match x.tolist())."""
    return np.asarray(values).reshape(-1).tolist()


VALUE_TYPES = {"values_strings": (object, "default_string", "_Unused"),
               "values_int64s": (np.int64, "default_int64", -1),
               "values_floats": (np.float32, "default_float", -0.0)}


def label_table(attrs) -> tuple:
    """LabelEncoder (opsets 2, 4) as ({key: value}, default, output dtype):
    keys_* -> values_*, missing keys get the default of the value type
    (default_tensor for values_tensor). The compiled numeric LabelEncoder
    (compiler/ops/ml.py) reads its tables here too."""
    _, keys = _first(attrs, "keys_tensor", "keys_strings", "keys_int64s", "keys_floats")
    vname, values = _first(attrs, "values_tensor", "values_strings", "values_int64s", "values_floats")
    if keys is None or values is None or len(_plain(keys)) != len(_plain(values)):
        raise ValueError("LabelEncoder needs keys and values of one length")
    if vname == "values_tensor":
        dtype = np.asarray(values).dtype
        default = attrs.get("default_tensor")
        if default is None:
            default = "_Unused" if dtype == object else (-0.0 if dtype.kind == "f" else -1)
        else:
            default = np.asarray(default).reshape(-1)[0]
    else:
        dtype, dname, dvalue = VALUE_TYPES[vname]
        default = attrs.get(dname, dvalue)
    table = {}
    for k, v in zip(_plain(keys), _plain(values)):
        table.setdefault(k, v)      # a repeated key keeps its first value, as onnxruntime
    return table, default, np.dtype(dtype)


def label_encoder(attrs, x):
    """Opset 1 maps strings to their index in classes_strings, or back."""
    if attrs.get("classes_strings") is not None:
        classes = list(attrs["classes_strings"])
        return category_mapper({"cats_strings": classes, "cats_int64s": list(range(len(classes))), **attrs}, x)
    return (_lookup(x, *label_table(attrs)),)


def category_mapper(attrs, x):
    """cats_strings[i] <-> cats_int64s[i], in the direction of x's type."""
    strings, ints = list(attrs.get("cats_strings", [])), _plain(attrs.get("cats_int64s", []))
    if len(strings) != len(ints):
        raise ValueError("CategoryMapper needs cats_strings and cats_int64s of one length")
    if x.dtype == object:
        return (_lookup(x, dict(zip(strings, ints)), int(attrs.get("default_int64", -1)), np.int64),)
    return (_lookup(x, dict(zip(ints, strings)), attrs.get("default_string", "_Unused"), object),)


def dict_vectorizer(attrs, x):
    """A map (dict) -> [1, len(vocabulary)], or a list of maps -> one row each;
    keys outside the vocabulary are ignored and missing ones give 0 ("" for
    strings), as onnxruntime. The dtype is the values' (Python floats give
    float64): the caller casts to the graph's declared output type."""
    _, vocab = _first(attrs, "string_vocabulary", "int64_vocabulary")
    if vocab is None:
        raise ValueError("DictVectorizer needs string_vocabulary or int64_vocabulary")
    vocab = _plain(vocab)
    rows = [x] if isinstance(x, dict) else list(x)
    values = [v for row in rows for v in row.values()]
    kind = np.asarray(values).dtype if values else np.dtype(np.float32)
    zero = "" if kind.kind in "OUS" else 0
    table = [[row.get(k, zero) for k in vocab] for row in rows]
    if kind.kind in "OUS":
        return (_strings([v for r in table for v in r], (len(rows), len(vocab))),)
    return (np.array(table, dtype=kind).reshape(len(rows), len(vocab)),)


# TfIdfVectorizer on strings --------------------------------------------------------------

def ngram_pool(attrs, pool) -> dict:
    """{n-gram tuple: output column} for the gram sizes in [min, max]
    (ngram_counts[i] is where the (i+1)-grams start in the pool)."""
    lo, hi = int(attrs["min_gram_length"]), int(attrs["max_gram_length"])
    counts = list(attrs["ngram_counts"]) + [len(pool)]
    columns = _plain(attrs["ngram_indexes"])
    table, gram = {}, 0
    for n, (start, stop) in enumerate(zip(counts, counts[1:]), start=1):
        for s in range(start, stop - n + 1, n):
            if lo <= n <= hi:
                table[tuple(pool[s:s + n])] = columns[gram]
            gram += 1
    return table


WEIGHTINGS = {"TF": lambda f, w: f, "IDF": lambda f, w: (f > 0) * w, "TFIDF": lambda f, w: f * w}


def tfidf_weights(attrs, size: int) -> np.ndarray:
    """One weight per output column; none given means all ones."""
    weights = np.asarray(attrs.get("weights", []), np.float64).reshape(-1)
    if weights.size == 0:
        return np.ones(size)
    if weights.size != size:
        raise ValueError(f"TfIdfVectorizer: {weights.size} weights for {size} output columns")
    return weights


def tfidf_weigh(attrs, counts: np.ndarray) -> np.ndarray:
    """Counts -> TF / IDF / TFIDF scores (float32)."""
    if attrs.get("mode") not in WEIGHTINGS:
        raise ValueError(f"TfIdfVectorizer: unknown mode {attrs.get('mode')!r}")
    return WEIGHTINGS[attrs["mode"]](counts, tfidf_weights(attrs, counts.shape[-1])).astype(np.float32)


def tfidf_vectorizer(attrs, x):
    """String TfIdfVectorizer: n-grams of x's [C] or [B, C] strings, taken every
    `skip + 1` items for skip in 0..max_skip_count (unigrams counted once)."""
    if x.ndim not in (1, 2):
        raise ValueError(f"TfIdfVectorizer takes [C] or [B, C], not {list(x.shape)}")
    table = ngram_pool(attrs, list(attrs.get("pool_strings") or _plain(attrs.get("pool_int64s", []))))
    lo, hi = int(attrs["min_gram_length"]), int(attrs["max_gram_length"])
    rows = x.reshape(-1, x.shape[-1]).tolist()
    counts = np.zeros((len(rows), max(_plain(attrs["ngram_indexes"])) + 1), np.float64)
    for r, row in enumerate(rows):
        for skip in range(1, int(attrs.get("max_skip_count", 0)) + 2):
            for n in range(max(lo, 1 if skip == 1 else 2), hi + 1):
                for s in range(len(row) - (n - 1) * skip):
                    col = table.get(tuple(row[s:s + (n - 1) * skip + 1:skip]))
                    if col is not None:
                        counts[r, col] += 1
    out = tfidf_weigh(attrs, counts)
    return (out.reshape(-1) if x.ndim == 1 else out,)


# Always on the host: these ops only ever carry strings or maps.
OPS = {
    ("", "StringConcat"): string_concat,
    ("", "StringSplit"): string_split,
    ("", "StringNormalizer"): string_normalizer,
    ("", "RegexFullMatch"): regex_full_match,
    (ML, "CategoryMapper"): category_mapper,
    (ML, "DictVectorizer"): dict_vectorizer,
}

# Compiled on numbers; here only when an input or output is a string.
NON_TENSOR_OPS = {
    ("", "Equal"): equal,
    ("", "TfIdfVectorizer"): tfidf_vectorizer,
    (ML, "LabelEncoder"): label_encoder,
}
