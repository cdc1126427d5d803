"""CPU lowerings of the ONNX-ML ops onto targets/cpu/kernels/ml.py.

Attributes arrive as constant arrays (em.const) and integer codes from the
tables in compiler/ops/ml.py; scores are float64 temporaries cast at the end."""
from __future__ import annotations

import numpy as np

from compiler.ops import ml as ml_ops
from compiler.ops.common import attr, ints
from compiler.registry import ML

from . import source
from .lower import lower

TREE_ARRAYS = ("feature", "threshold", "mode", "true", "false", "missing", "member_ptr", "members",
               "leaf_ptr", "leaf_target", "leaf_weight", "roots")


def _rows(em, v):
    """Value v as a (rows, features) view."""
    return f"{em[v]}.reshape({source.ints(ml_ops.rows_of(v))})"


def _scores(em, rows, cols):
    t = em.tmp()
    em.emit(f"{t} = np.empty({source.ints((rows, cols))}, np.float64)")
    return t


def _cast_out(em, value, scores):
    em.define(value, f"{scores}.reshape({source.ints(value.shape)}).astype({source.dtype_name(value.dtype)})")


def _labels(em, node, scores, labels, threshold=0.0):
    if len(node.outputs) > 0 and node.outputs[0].name:
        res = em.alloc(node.outputs[0])
        em.emit(f"{em.lib('ml')}.pick_labels({scores}, {em.const(labels)}, {source.num(threshold)}, {res})")


def _complement(post):
    """Binary trees and linear models fill the negative class with 1 - score when
    no transform (or PROBIT) follows, else with -score (as onnxruntime does)."""
    return post in (ml_ops.POST["NONE"], ml_ops.POST["PROBIT"])


def _post(em, scores, code):
    if code:
        em.emit(f"{em.lib('ml')}.post_transform({scores}, {int(code)})")


@lower("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble", domain=ML)
def _trees(node, em):
    x = node.inputs[0]
    rows, _ = ml_ops.rows_of(x)
    t = ml_ops.tree_tables(node)
    classifier = node.op == "TreeEnsembleClassifier"
    out = node.outputs[1] if classifier else node.outputs[0]
    init = 0.0
    if t["aggregate"] in (2, 3):    # MIN / MAX start from the output type's extremes
        info = np.finfo(out.dtype)
        init = float(info.max if t["aggregate"] == 2 else info.min)
    L = em.lib("ml")
    s = _scores(em, rows, t["n_out"])
    arrays = ", ".join(em.const(t[k]) for k in TREE_ARRAYS)
    em.emit(f"{L}.tree_ensemble({_rows(em, x)}, {arrays}, {int(t['aggregate'])}, {source.num(init)}, "
            f"{em.const(t['base'])}, {s})")
    if classifier and len(set(ints(attr(node, "class_ids")))) == 1 and t["n_out"] == 2:
        em.emit(f"{L}.two_columns({s}[:, 0], {s}, {_complement(t['post'])})")
    _post(em, s, t["post"])
    if classifier:
        _labels(em, node, s, ml_ops.class_labels(node, "classlabels_strings", "classlabels_int64s"))
    _cast_out(em, out, s)


@lower("LinearClassifier", "LinearRegressor", domain=ML)
def _linear(node, em):
    x = node.inputs[0]
    rows, f = ml_ops.rows_of(x)
    coef = ml_ops.floats(node, "coefficients").reshape(-1, f)
    intercept = ml_ops.floats(node, "intercepts", np.zeros(coef.shape[0]))
    if intercept.size == 1:
        intercept = np.full(coef.shape[0], intercept[0])
    if intercept.size != coef.shape[0]:
        raise NotImplementedError(f"{intercept.size} intercepts for {coef.shape[0]} outputs")
    post = ml_ops.code(ml_ops.POST, attr(node, "post_transform", "NONE"), "post_transform")
    L = em.lib("ml")
    s = _scores(em, rows, coef.shape[0])
    em.emit(f"{L}.linear({_rows(em, x)}, {em.const(coef)}, {em.const(intercept)}, {s})")
    out = node.outputs[-1]
    if node.op == "LinearClassifier":
        _, k, cols = ml_ops.linear_classifier_shape(node)
        if cols != k:
            s2 = _scores(em, rows, 2)
            em.emit(f"{L}.two_columns({s}[:, 0], {s2}, {_complement(post)})")
            s = s2
        labels = ml_ops.class_labels(node, "classlabels_strings", "classlabels_ints")
        if cols == 1 and attr(node, "classlabels_strings"):
            raise NotImplementedError("one score column with string labels")
        if labels.size == 0:
            labels = np.arange(max(cols, 2), dtype=np.int64)[1 if cols == 1 else 0:]
        _post(em, s, post)
        _labels(em, node, s, labels, threshold=0.0 if post == 0 else 0.5)
    else:
        _post(em, s, post)
    _cast_out(em, out, s)


def _svm_params(node):
    kernel = ml_ops.code(ml_ops.SVM_KERNELS, attr(node, "kernel_type", "LINEAR"), "kernel_type")
    gamma, coef0, degree = (list(attr(node, "kernel_params", [])) + [0.0, 0.0, 0.0])[:3]
    return f"{kernel}, {source.num(float(gamma))}, {source.num(float(coef0))}, {source.num(float(int(degree)))}"


@lower("SVMRegressor", domain=ML)
def _svm_regressor(node, em):
    x, out = node.inputs[0], node.outputs[0]
    rows, f = ml_ops.rows_of(x)
    coef = ml_ops.floats(node, "coefficients")
    params = _svm_params(node)
    if int(attr(node, "n_supports", 0)) > 0:
        sv = ml_ops.floats(node, "support_vectors").reshape(-1, f)
    else:       # linear mode: the coefficients are one support vector of weight 1
        sv, coef, params = coef.reshape(1, f), np.ones(1), "0, 0.0, 0.0, 0.0"
    rho = ml_ops.floats(node, "rho", [0.0])
    L = em.lib("ml")
    s = _scores(em, rows, 1)
    em.emit(f"{L}.svm_regressor({_rows(em, x)}, {em.const(sv)}, {em.const(coef)}, {source.num(float(rho[0]))}, "
            f"{params}, {bool(attr(node, 'one_class', 0))}, {s}[:, 0])")
    _post(em, s, ml_ops.code(ml_ops.POST, attr(node, "post_transform", "NONE"), "post_transform"))
    _cast_out(em, out, s)


@lower("SVMClassifier", domain=ML)
def _svm_classifier(node, em):
    x = node.inputs[0]
    rows, c, pairs, cols, proba = ml_ops.svm_classifier_shape(node)
    _, f = ml_ops.rows_of(x)
    per_class = np.asarray(ints(attr(node, "vectors_per_class")), np.int64)
    start = np.concatenate([[0], np.cumsum(per_class)[:-1]]).astype(np.int64)
    sv = ml_ops.floats(node, "support_vectors").reshape(-1, f)
    coef = ml_ops.floats(node, "coefficients").reshape(-1, sv.shape[0])
    rho = ml_ops.floats(node, "rho")
    if coef.shape[0] != c - 1 or rho.size != pairs:
        raise NotImplementedError("SVMClassifier coefficients or rho do not match the classes")
    post = ml_ops.code(ml_ops.POST, attr(node, "post_transform", "NONE"), "post_transform")
    L = em.lib("ml")
    votes, s = _scores(em, rows, c), _scores(em, rows, pairs)
    em.emit(f"{L}.svm_classifier({_rows(em, x)}, {em.const(sv)}, {em.const(coef)}, {em.const(rho)}, "
            f"{em.const(start)}, {em.const(per_class)}, {_svm_params(node)}, {votes}, {s})")
    _labels(em, node, votes, ml_ops.class_labels(node, "classlabels_strings", "classlabels_ints"))
    if proba:
        p = _scores(em, rows, c)
        em.emit(f"{L}.svm_probabilities({s}, {em.const(ml_ops.floats(node, 'prob_a'))}, "
                f"{em.const(ml_ops.floats(node, 'prob_b'))}, {p})")
        s = p
    elif pairs == 1:
        if post == ml_ops.POST["PROBIT"]:
            raise NotImplementedError("PROBIT on a binary SVM without probabilities")
        s2 = _scores(em, rows, 2)
        em.emit(f"{L}.two_columns({s}[:, 0], {s2}, False)")
        s = s2
    _post(em, s, post)
    _cast_out(em, node.outputs[1], s)


@lower("Scaler", "Normalizer", "Imputer", domain=ML)
def _row_transforms(node, em):
    x, out = node.inputs[0], node.outputs[0]
    L = em.lib("ml")
    if node.op == "Imputer":
        res = em.alloc(out)
        as_float = x.dtype.kind == "f"
        values = ml_ops.floats(node, "imputed_value_floats") if as_float else None
        if values is None or values.size == 0:
            values = np.asarray(attr(node, "imputed_value_int64s", []), np.int64)
            replaced = int(attr(node, "replaced_value_int64", 0))
        else:
            replaced = float(attr(node, "replaced_value_float", 0.0))
        if values.size not in (1, ml_ops.rows_of(x)[1]):
            raise NotImplementedError(f"{values.size} imputed values for {ml_ops.rows_of(x)[1]} columns")
        em.emit(f"{L}.imputer({_rows(em, x)}, {em.const(values.astype(x.dtype))}, "
                f"{source.num(replaced)}, {res}.reshape({source.ints(ml_ops.rows_of(x))}))")
        return
    rows, f = ml_ops.rows_of(x)
    s = _scores(em, rows, f)
    if node.op == "Scaler":
        offset, scale = ml_ops.floats(node, "offset", [0.0]), ml_ops.floats(node, "scale", [1.0])
        if {offset.size, scale.size} - {1, f}:
            raise NotImplementedError("Scaler offset/scale must have one value or one per column")
        em.emit(f"{L}.scaler({_rows(em, x)}, {em.const(offset)}, {em.const(scale)}, {s})")
    else:
        norm = ml_ops.code(ml_ops.NORMS, attr(node, "norm", "MAX"), "norm")
        em.emit(f"{L}.normalizer({_rows(em, x)}, {norm}, {s})")
    _cast_out(em, out, s)


@lower("Binarizer", domain=ML)
def _binarizer(node, em):
    x, out = node.inputs[0], node.outputs[0]
    res = em.alloc(out)
    em.emit(f"{em.lib('ml')}.binarizer({em[x]}.reshape({x.size}), {source.num(float(attr(node, 'threshold', 0.0)))}, "
            f"{res}.reshape({out.size}))")


@lower("OneHotEncoder", domain=ML)
def _one_hot(node, em):
    x, out = node.inputs[0], node.outputs[0]
    cats = np.asarray(attr(node, "cats_int64s"), np.int64)
    order = np.argsort(cats, kind="stable")
    if np.unique(cats).size != cats.size:
        raise NotImplementedError("OneHotEncoder with repeated categories")
    res = em.alloc(out)
    em.emit(f"{em.lib('ml')}.one_hot({em[x]}.reshape({x.size}), {em.const(cats[order])}, "
            f"{em.const(order.astype(np.int64))}, {bool(attr(node, 'zeros', 1))}, "
            f"{res}.reshape({source.ints((x.size, cats.size))}))")


@lower("ArrayFeatureExtractor", domain=ML)
def _array_feature_extractor(node, em):
    x, idx, out = node.inputs[0], node.inputs[1], node.outputs[0]
    rows, _ = ml_ops.rows_of(x)
    res = em.alloc(out)
    em.emit(f"{em.lib('ml')}.take_columns({_rows(em, x)}, {em[idx]}.reshape({idx.size}), "
            f"{res}.reshape({source.ints((rows, idx.size))}))")


@lower("FeatureVectorizer", domain=ML)
def _feature_vectorizer(node, em):
    out = node.outputs[0]
    res = em.alloc(out)
    first = 0
    for v, width in zip([v for v in node.inputs if v is not None], ints(attr(node, "inputdimensions"))):
        em.emit(f"{em.lib('ml')}.place_columns({_rows(em, v)}, {res}, {first}, {width})")
        first += width


@lower("LabelEncoder", domain=ML)
def _label_encoder(node, em):
    x, out = node.inputs[0], node.outputs[0]
    keys, values, fallback = ml_ops.label_arrays(node)
    res = em.alloc(out)
    em.emit(f"{em.lib('ml')}.label_encode({em[x]}.reshape({x.size}), {em.const(keys)}, {em.const(values)}, "
            f"{em.const(fallback)}, {res}.reshape({out.size}))")
