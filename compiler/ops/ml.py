"""The ONNX-ML domain (ai.onnx.ml): numeric classic-ML ops.

Attribute strings (modes, post transforms, kernels) become integer codes
through the tables below, and tree ensembles are flattened by `tree_tables`
into plain arrays, so targets never see model text."""
from __future__ import annotations

import numpy as np

from runtime.host_strings import label_table

from ..dtypes import UnsupportedDType, is_small_float
from ..registry import ML, OPAQUE, register
from .common import ShapeError, attr, ints

POST = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2, "SOFTMAX_ZERO": 3, "PROBIT": 4}
AGGREGATE = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}
MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3,
         "BRANCH_EQ": 4, "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6, "LEAF": 7}
MEMBER, LEAF = MODES["BRANCH_MEMBER"], MODES["LEAF"]
SVM_KERNELS = {"LINEAR": 0, "POLY": 1, "RBF": 2, "SIGMOID": 3}
NORMS = {"MAX": 0, "L1": 1, "L2": 2}


def code(table: dict, value, what: str) -> int:
    """A string attribute (or an int one, as in TreeEnsemble-5) as its code."""
    if isinstance(value, (int, np.integer)):
        if not 0 <= int(value) < len(table):
            raise ShapeError(f"{what} {int(value)} is out of range")
        return int(value)
    if value not in table:
        raise ShapeError(f"unknown {what} {value!r}")
    return table[value]


def floats(node, name, default=None):
    """A float attribute list, or its `<name>_as_tensor` (double) form, as float64."""
    for key in (name + "_as_tensor", name):
        v = node.attrs.get(key)
        if v is not None:
            return np.asarray(v, np.float64).reshape(-1)
    return None if default is None else np.asarray(default, np.float64)


def rows_of(x) -> tuple:
    """(rows, features) of a classic-ML input: a 1-D input is one row."""
    if len(x.shape) == 0:
        raise ShapeError("a scalar input is not supported")
    if len(x.shape) == 1:
        return 1, x.shape[0]
    return int(np.prod(x.shape[:-1], dtype=np.int64)), x.shape[-1]


def class_labels(node, *names):
    """The int64 class labels. String labels become their indices: kernels
    return those, and the runtime looks the strings up (string_label_outputs)."""
    for n in names:
        if n.endswith("strings") and node.attrs.get(n):
            return np.arange(len(node.attrs[n]), dtype=np.int64)
    for n in names:
        if not n.endswith("strings") and node.attrs.get(n) is not None:
            return np.asarray(node.attrs[n], np.int64)
    return np.zeros(0, np.int64)


def string_label_outputs(model) -> dict:
    """Graph outputs holding classifier labels given as strings: name -> labels.
    Strings are no tensor type our kernels return, so these outputs carry
    indices that the runtime maps on the host; they may pass through Identity
    (as skl2onnx exports them) but feed no other node."""
    found = {}
    for n in model.graph.node:
        labels = [list(a.strings) for a in n.attribute if a.name == "classlabels_strings" and a.strings]
        if n.domain == ML and labels and n.output and n.output[0]:
            found[n.output[0]] = [b.decode("utf-8", "replace") for b in labels[0]]
        elif n.op_type == "Identity" and n.domain in ("", "ai.onnx") and n.input[0] in found:
            found[n.output[0]] = found[n.input[0]]
    for n in model.graph.node:
        if n.op_type != "Identity" and any(i in found for i in n.input):
            raise UnsupportedDType(f"node {n.name!r}: string labels that feed other nodes are not supported")
    return {o.name: found[o.name] for o in model.graph.output if o.name in found}


def split_zipmaps(model):
    """ZipMap makes a list of {label: probability} maps, which is no tensor: the
    compiled graph returns the probability tensor under ZipMap's output name and
    the runtime zips it on the host. Returns (model without the ZipMap nodes,
    {output name: labels})."""
    outputs = {o.name for o in model.graph.output}
    zips = [n for n in model.graph.node if n.domain == ML and n.op_type == "ZipMap" and n.output[0] in outputs]
    if not zips:
        return model, {}
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    found, rename = {}, {}
    for n in zips:
        attrs = {a.name: a for a in n.attribute}
        if "classlabels_strings" in attrs:
            labels = [b.decode("utf-8", "replace") for b in attrs["classlabels_strings"].strings]
        else:
            labels = [int(i) for i in attrs["classlabels_int64s"].ints]
        if n.input[0] in outputs:
            raise UnsupportedDType(f"node {n.name!r}: ZipMap of a graph output is not supported")
        found[n.output[0]] = labels
        rename[n.input[0]] = n.output[0]
    kept = [n for n in m.graph.node if not (n.domain == ML and n.op_type == "ZipMap" and n.output[0] in found)]
    for n in kept:
        n.input[:] = [rename.get(i, i) for i in n.input]
        n.output[:] = [rename.get(o, o) for o in n.output]
    del m.graph.node[:]
    m.graph.node.extend(kept)
    for o in m.graph.output:
        if o.name in found:
            o.type.CopyFrom(onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, [None, len(found[o.name])]))
    return m, found


# trees ------------------------------------------------------------------------------

def _csr(owner, n, *columns):
    """Group entries by owner node (stable): (ptr[n + 1], columns sorted by owner)."""
    owner = np.asarray(owner, np.int64)
    order = np.argsort(owner, kind="stable")
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=ptr[1:])
    return (ptr,) + tuple(np.asarray(c)[order] for c in columns)


def _legacy_trees(node, prefix):
    """TreeEnsembleClassifier/Regressor (ai.onnx.ml 1, 3): nodes named by (tree id, node id)."""
    a = node.attrs
    tids, nids = ints(a["nodes_treeids"]), ints(a["nodes_nodeids"])
    n = len(tids)
    index = {(t, i): k for k, (t, i) in enumerate(zip(tids, nids))}
    modes = np.array([code(MODES, m, "node mode") for m in a["nodes_modes"]], np.int64)
    if (modes == MEMBER).any():
        raise ShapeError("BRANCH_MEMBER needs TreeEnsemble (ai.onnx.ml 5)")

    def children(key):
        out = np.zeros(n, np.int64)
        for k, c in enumerate(ints(a[key])):
            if modes[k] != LEAF:
                if (tids[k], c) not in index:
                    raise ShapeError(f"node ({tids[k]}, {nids[k]}) has no child node {c}")
                out[k] = index[tids[k], c]
        return out

    roots = {}
    for k, t in enumerate(tids):
        roots.setdefault(t, k)
    ltids, lnids = ints(a[prefix + "_treeids"]), ints(a[prefix + "_nodeids"])
    try:
        owner = [index[t, i] for t, i in zip(ltids, lnids)]
    except KeyError as e:
        raise ShapeError(f"a leaf weight names the unknown node {e.args[0]}") from None
    missing = a.get("nodes_missing_value_tracks_true") or [0] * n
    leaf_ptr, targets, weights = _csr(owner, n, ints(a[prefix + "_ids"]), floats(node, prefix + "_weights"))
    return dict(feature=np.asarray(ints(a["nodes_featureids"]), np.int64),
                threshold=floats(node, "nodes_values", np.zeros(n)), mode=modes,
                true=children("nodes_truenodeids"), false=children("nodes_falsenodeids"),
                missing=np.asarray(ints(missing), np.int64),
                member_ptr=np.zeros(n + 1, np.int64), members=np.zeros(0, np.float64),
                leaf_ptr=leaf_ptr, leaf_target=targets.astype(np.int64), leaf_weight=weights.astype(np.float64),
                roots=np.array([roots[t] for t in sorted(roots)], np.int64))


def _trees_v5(node):
    """TreeEnsemble (ai.onnx.ml 5): internal nodes, then one node per leaf."""
    a = node.attrs
    ni, nl = len(a["nodes_featureids"]), len(a["leaf_targetids"])
    modes = np.asarray(a["nodes_modes"]).astype(np.int64).reshape(-1)
    if modes.size and not ((0 <= modes) & (modes <= MEMBER)).all():
        raise ShapeError("node mode out of range")

    def children(ids, leafs):
        return np.asarray(ints(ids), np.int64) + ni * (np.asarray(ints(leafs), np.int64) != 0)

    member_ptr = np.zeros(ni + nl + 1, np.int64)
    members = np.zeros(0, np.float64)
    if (modes == MEMBER).any():
        values = np.asarray(a["membership_values"], np.float64).reshape(-1)
        groups = np.split(values, np.flatnonzero(np.isnan(values)) + 1)
        groups = [g[~np.isnan(g)] for g in groups]
        sizes = np.zeros(ni + nl, np.int64)
        member_nodes = np.flatnonzero(modes == MEMBER)
        if len(groups) < len(member_nodes):
            raise ShapeError("membership_values has fewer sets than BRANCH_MEMBER nodes")
        for k, g in zip(member_nodes, groups):
            sizes[k] = g.size
        np.cumsum(sizes, out=member_ptr[1:])
        members = np.concatenate([np.zeros(0)] + groups[:len(member_nodes)])
    missing = a.get("nodes_missing_value_tracks_true") or [0] * ni
    return dict(feature=np.concatenate([np.asarray(ints(a["nodes_featureids"]), np.int64), np.zeros(nl, np.int64)]),
                threshold=np.concatenate([np.asarray(a["nodes_splits"], np.float64).reshape(-1), np.zeros(nl)]),
                mode=np.concatenate([modes, np.full(nl, LEAF, np.int64)]),
                true=np.concatenate([children(a["nodes_truenodeids"], a["nodes_trueleafs"]), np.zeros(nl, np.int64)]),
                false=np.concatenate([children(a["nodes_falsenodeids"], a["nodes_falseleafs"]), np.zeros(nl, np.int64)]),
                missing=np.concatenate([np.asarray(ints(missing), np.int64), np.zeros(nl, np.int64)]),
                member_ptr=member_ptr, members=members,
                leaf_ptr=np.concatenate([np.zeros(ni, np.int64), np.arange(nl + 1, dtype=np.int64)]),
                leaf_target=np.asarray(ints(a["leaf_targetids"]), np.int64),
                leaf_weight=np.asarray(a["leaf_weights"], np.float64).reshape(-1),
                roots=np.asarray(ints(a["tree_roots"]), np.int64))


def tree_tables(node) -> dict:
    """The ensemble as flat arrays (feature, threshold, mode code, true/false child,
    missing-goes-true, member sets and leaf weights as CSR, roots) plus the
    number of score columns, base values, and aggregate / post-transform codes."""
    if node.op == "TreeEnsemble":
        t = _trees_v5(node)
        n_out = int(attr(node, "n_targets"))
        t.update(aggregate=code(AGGREGATE, attr(node, "aggregate_function", 1), "aggregate_function"),
                 base=np.zeros(n_out), post=code(POST, attr(node, "post_transform", 0), "post_transform"))
    elif node.op == "TreeEnsembleRegressor":
        t = _legacy_trees(node, "target")
        n_out = int(attr(node, "n_targets", 1))
        t.update(aggregate=code(AGGREGATE, attr(node, "aggregate_function", "SUM"), "aggregate_function"),
                 base=floats(node, "base_values", np.zeros(n_out)), post=code(POST, attr(node, "post_transform", "NONE"), "post_transform"))
    else:
        t = _legacy_trees(node, "class")
        n_out = len(class_labels(node, "classlabels_strings", "classlabels_int64s"))
        t.update(aggregate=AGGREGATE["SUM"], base=floats(node, "base_values", np.zeros(n_out)),
                 post=code(POST, attr(node, "post_transform", "NONE"), "post_transform"))
    if t["base"].size == 1:
        t["base"] = np.full(n_out, t["base"][0])
    n = t["mode"].size
    if t["base"].size != n_out:
        raise ShapeError(f"base_values has {t['base'].size} values for {n_out} outputs")
    if t["leaf_target"].size and not (0 <= t["leaf_target"].min() and t["leaf_target"].max() < n_out):
        raise ShapeError("a leaf names a target or class out of range")
    for k in ("true", "false", "roots"):
        if t[k].size and not (0 <= t[k].min() and t[k].max() < n):
            raise ShapeError("a tree names a node out of range")
    t["n_out"] = n_out
    return t


def _features(node):
    x = node.inputs[0]
    if x.dtype.kind not in "fiu":
        raise UnsupportedDType(f"{node.op} on {x.dtype} is not supported")
    return rows_of(x)


def _tree_regressor(node):
    rows, _ = _features(node)
    t = tree_tables(node)
    dt = node.inputs[0].dtype if node.op == "TreeEnsemble" else np.float32
    return [(dt, (rows, t["n_out"]))]


def _tree_classifier(node):
    rows, _ = _features(node)
    n = len(class_labels(node, "classlabels_strings", "classlabels_int64s"))
    if n < 2:
        raise ShapeError("a classifier needs at least two class labels")
    tree_tables(node)
    return [(np.int64, (rows,)), (np.float32, (rows, n))]


# linear models and SVMs ---------------------------------------------------------------

def linear_classifier_shape(node):
    """(rows, score columns before the binary case, score columns out)."""
    rows, f = _features(node)
    coef = floats(node, "coefficients")
    if coef.size % max(f, 1):
        raise ShapeError(f"{coef.size} coefficients for {f} features")
    k = coef.size // max(f, 1)
    n = len(class_labels(node, "classlabels_strings", "classlabels_ints"))
    return rows, k, (2 if k == 1 and n == 2 else k)


def _linear_classifier(node):
    rows, _, cols = linear_classifier_shape(node)
    return [(np.int64, (rows,)), (np.float32, (rows, cols))]


def _linear_regressor(node):
    rows, f = _features(node)
    t = int(attr(node, "targets", 1))
    if floats(node, "coefficients").size != t * f:
        raise ShapeError("coefficients do not match targets x features")
    return [(np.float32, (rows, t))]


def svm_classifier_shape(node):
    """(rows, classes, pairwise scores, score columns out, has probabilities)."""
    rows, f = _features(node)
    c = len(class_labels(node, "classlabels_strings", "classlabels_ints"))
    per_class = ints(attr(node, "vectors_per_class", []))
    if not per_class or sum(per_class) == 0:
        raise ShapeError("SVMClassifier without support vectors (linear mode) is not supported")
    if len(per_class) != c or c < 2:
        raise ShapeError("vectors_per_class does not match the class labels")
    pairs = c * (c - 1) // 2
    proba = len(attr(node, "prob_a", []) or []) > 0
    if floats(node, "support_vectors").size != sum(per_class) * f:
        raise ShapeError("support_vectors do not match the feature count")
    return rows, c, pairs, (c if proba else (2 if pairs == 1 else pairs)), proba


def _svm_classifier(node):
    rows, _, _, cols, _ = svm_classifier_shape(node)
    return [(np.int64, (rows,)), (np.float32, (rows, cols))]


def _svm_regressor(node):
    rows, _ = _features(node)
    return [(np.float32, (rows, 1))]


# feature transforms ------------------------------------------------------------------

def _same_float(node):
    x = node.inputs[0]
    _features(node)
    return [(np.float32, x.shape)]


def _same(node):
    x = node.inputs[0]
    _features(node)
    return [(x.dtype, x.shape)]


def _one_hot(node):
    x = node.inputs[0]
    if attr(node, "cats_strings") and not attr(node, "cats_int64s"):
        raise UnsupportedDType("OneHotEncoder with string categories is not supported")
    _features(node)
    return [(np.float32, tuple(x.shape) + (len(attr(node, "cats_int64s", [])),))]


def _array_feature_extractor(node):
    x, idx = node.inputs[0], node.inputs[1]
    if idx.dtype != np.int64:
        raise ShapeError("ArrayFeatureExtractor indices must be int64")
    k = int(np.prod(idx.shape, dtype=np.int64))
    shape = (1, k) if len(x.shape) == 1 else tuple(x.shape[:-1]) + (k,)
    return [(x.dtype, shape)]


def _feature_vectorizer(node):
    dims = ints(attr(node, "inputdimensions", []))
    ins = [v for v in node.inputs if v is not None]
    if len(dims) != len(ins) or not ins:
        raise ShapeError("inputdimensions must give one size per input")
    rows = {rows_of(v)[0] for v in ins}
    if len(rows) != 1 or any(len(v.shape) > 2 for v in ins):
        raise ShapeError("FeatureVectorizer inputs must be [C] or [N, C] with one N")
    return [(np.float32, (rows.pop(), sum(dims)))]


def label_arrays(node) -> tuple:
    """Numeric LabelEncoder as (sorted keys, their values, [default, value of
    NaN]); with strings it runs on the host (runtime/host_strings.py)."""
    if attr(node, "classes_strings") is not None:
        raise UnsupportedDType("LabelEncoder-1 maps strings: it runs on the host")
    table, default, dtype = label_table(node.attrs)
    if dtype.kind not in "fiu" or is_small_float(dtype) or any(isinstance(k, str) for k in table):
        raise UnsupportedDType("LabelEncoder with strings runs on the host")
    nan = next((v for k, v in table.items() if k != k), default)
    keys = sorted(k for k in table if k == k)
    kind = np.float64 if node.inputs[0].dtype.kind == "f" else np.int64
    return (np.array(keys, kind), np.array([table[k] for k in keys], dtype), np.array([default, nan], dtype))


def _label_encoder(node):
    x = node.inputs[0]
    if x.dtype.kind not in "fiu" or is_small_float(x.dtype):
        raise UnsupportedDType(f"LabelEncoder on {x.dtype} runs on the host or is not supported")
    return [(label_arrays(node)[1].dtype, x.shape)]


for _op, _infer in [("TreeEnsembleClassifier", _tree_classifier), ("TreeEnsembleRegressor", _tree_regressor),
                    ("TreeEnsemble", _tree_regressor), ("LinearClassifier", _linear_classifier),
                    ("LinearRegressor", _linear_regressor), ("SVMClassifier", _svm_classifier),
                    ("SVMRegressor", _svm_regressor), ("Scaler", _same_float), ("Normalizer", _same_float),
                    ("Binarizer", _same), ("Imputer", _same), ("OneHotEncoder", _one_hot),
                    ("ArrayFeatureExtractor", _array_feature_extractor), ("FeatureVectorizer", _feature_vectorizer),
                    ("LabelEncoder", _label_encoder)]:
    register(_op, OPAQUE, _infer, domain=ML)
