"""ONNX-ML (ai.onnx.ml) ops on the CPU target.

scikit-learn models exported with skl2onnx are compared with scikit-learn's
own predictions and with onnxruntime; single ML nodes (modes, aggregates,
post transforms, kernels that skl2onnx does not emit) with onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,  # noqa: E402
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR  # noqa: E402

ML = "ai.onnx.ml"
F, D, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64
X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = X_IRIS.astype(np.float32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ml-cache"))


def onnxruntime(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def reference(model, feeds):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def run_both(model, feeds, cache, oracle=onnxruntime):
    """Our outputs, checked to agree with the oracle's in dtype, shape and value.
    atol 1e-3: we accumulate in float64, onnxruntime often in float32 (an SVR
    with a linear kernel is 3e-4 away from scikit-learn there, 2e-6 here);
    the scikit-learn tests check values tightly against scikit-learn itself."""
    got = compile(model, cache_dir=cache).run(feeds)
    got = [got[o.name] for o in model.graph.output]
    want = oracle(model, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)
        else:
            np.testing.assert_array_equal(g, w)
    return got


# scikit-learn models ------------------------------------------------------------------

CLASSIFIERS = {
    "random_forest": lambda: RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0),
    "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=6, random_state=0),
    "logistic_regression": lambda: LogisticRegression(max_iter=1000),
    "svc_rbf_proba": lambda: SVC(probability=True, random_state=0),
    "svc_poly": lambda: SVC(kernel="poly", degree=2),
}


@pytest.mark.parametrize("binary", [False, True], ids=["multiclass", "binary"])
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_sklearn_classifier(name, binary, cache):
    y = (Y_IRIS == 2).astype(np.int64) if binary else Y_IRIS
    model = CLASSIFIERS[name]().fit(X_IRIS, y)
    onx = skl2onnx.to_onnx(model, X_IRIS[:1], options={id(model): {"zipmap": False}})
    labels, scores = run_both(onx, {onx.graph.input[0].name: X_IRIS}, cache)
    np.testing.assert_array_equal(labels, model.predict(X_IRIS))
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(scores, model.predict_proba(X_IRIS), atol=1e-4)
    else:
        want = model.decision_function(X_IRIS)   # binary: column 0, as onnxruntime has it
        np.testing.assert_allclose(scores[:, 0] if binary else scores, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["random_forest", "logistic_regression", "svc_poly"])
def test_sklearn_classifier_string_labels(name, cache):
    """String class labels: the kernels return indices, the runtime maps them."""
    y = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]
    model = CLASSIFIERS[name]().fit(X_IRIS, y)
    onx = skl2onnx.to_onnx(model, X_IRIS[:1], options={id(model): {"zipmap": False}})
    labels, _ = run_both(onx, {onx.graph.input[0].name: X_IRIS}, cache)
    np.testing.assert_array_equal(labels, model.predict(X_IRIS))


REGRESSORS = {
    "random_forest": lambda: RandomForestRegressor(n_estimators=8, max_depth=5, random_state=0),
    "gradient_boosting": lambda: GradientBoostingRegressor(n_estimators=6, random_state=0),
    "linear_regression": LinearRegression,
    "svr_rbf": SVR,
    "svr_linear": lambda: SVR(kernel="linear"),
}


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_sklearn_regressor(name, cache):
    x, y = X_IRIS[:, :3], X_IRIS[:, 3]
    model = REGRESSORS[name]().fit(x, y)
    onx = skl2onnx.to_onnx(model, x[:1])
    got, = run_both(onx, {onx.graph.input[0].name: x}, cache)
    np.testing.assert_allclose(got.reshape(-1), model.predict(x), rtol=1e-4, atol=1e-4)


def test_sklearn_preprocessing_pipeline(cache):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    x[:, 2] = rng.integers(0, 4, 60)
    x[::7, 0] = np.nan
    pipe = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1]),
                              ("cat", OneHotEncoder(), [2])]).fit(x)
    onx = skl2onnx.to_onnx(pipe, x[:1])
    got, = run_both(onx, {onx.graph.input[0].name: x}, cache)
    np.testing.assert_allclose(got, pipe.transform(x), atol=1e-5)


# single ML nodes ----------------------------------------------------------------------

def ml_model(node, inputs, outputs, ml_opset=3):
    g = helper.make_graph([node], "ml", [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, ml_opset)])


RNG = np.random.default_rng(1)
X4 = RNG.normal(size=(7, 4)).astype(np.float32)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer(norm, cache):
    """MAX divides by max |x| as onnx.reference and scikit-learn do (onnxruntime: by max x)."""
    node = helper.make_node("Normalizer", ["x"], ["y"], domain=ML, norm=norm)
    run_both(ml_model(node, [("x", F, [7, 4])], [("y", F, [7, 4])]), {"x": X4}, cache,
             oracle=reference if norm == "MAX" else onnxruntime)


def test_binarizer_scaler_imputer(cache):
    for node, xt, x in [
        (helper.make_node("Binarizer", ["x"], ["y"], domain=ML, threshold=0.2), F, X4),
        (helper.make_node("Scaler", ["x"], ["y"], domain=ML, offset=[0.5, 0.0, -1.0, 2.0], scale=[1.0, 2.0, -1.0, 0.5]), F, X4),
        (helper.make_node("Imputer", ["x"], ["y"], domain=ML, imputed_value_floats=[1.0, 2.0, 3.0, 4.0],
                          replaced_value_float=float("nan")), F, np.where(X4 > 0.5, np.nan, X4).astype(np.float32)),
        (helper.make_node("Imputer", ["x"], ["y"], domain=ML, imputed_value_int64s=[9], replaced_value_int64=0),
         I64, (X4 * 2).astype(np.int64)),
    ]:
        yt = F if node.op_type == "Scaler" else xt
        run_both(ml_model(node, [("x", xt, [7, 4])], [("y", yt, [7, 4])]), {"x": x}, cache)


def test_one_hot_feature_vectorizer_array_feature_extractor(cache):
    x = RNG.integers(0, 5, size=(6, 2)).astype(np.int64)
    node = helper.make_node("OneHotEncoder", ["x"], ["y"], domain=ML, cats_int64s=[4, 1, 0, 3], zeros=1)
    run_both(ml_model(node, [("x", I64, [6, 2])], [("y", F, [6, 2, 4])]), {"x": x}, cache)
    node = helper.make_node("FeatureVectorizer", ["a", "b"], ["y"], domain=ML, inputdimensions=[3, 2])
    m = ml_model(node, [("a", F, [7, 4]), ("b", F, [7, 1])], [("y", F, [7, 5])])
    run_both(m, {"a": X4, "b": X4[:, :1] * 3}, cache)
    node = helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain=ML)
    m = ml_model(node, [("x", F, [7, 4]), ("i", I64, [3])], [("y", F, [7, 3])])
    run_both(m, {"x": X4, "i": np.array([3, 0, 3], np.int64)}, cache)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"])
def test_linear_classifier_post_transforms(post, cache):
    coef = RNG.normal(size=(3, 4)).round(2) * 0.1     # scores in (0, 1), where PROBIT is defined
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain=ML, coefficients=coef.reshape(-1).tolist(),
                            intercepts=[0.5, 0.4, 0.6], classlabels_ints=[5, 6, 7], post_transform=post)
    m = ml_model(node, [("x", F, [7, 4])], [("label", I64, [7]), ("scores", F, [7, 3])], ml_opset=1)
    run_both(m, {"x": X4}, cache)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
def test_linear_classifier_binary(post, cache):
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain=ML, coefficients=[0.5, -1.0, 0.25, 2.0],
                            intercepts=[0.1], classlabels_ints=[3, 9], post_transform=post)
    m = ml_model(node, [("x", F, [7, 4])], [("label", I64, [7]), ("scores", F, [7, 2])], ml_opset=1)
    run_both(m, {"x": X4}, cache)


@pytest.mark.parametrize("kernel,params", [("LINEAR", [0.0, 0.0, 0]), ("POLY", [0.5, 1.0, 3]), ("SIGMOID", [0.3, 0.1, 0])])
def test_svm_regressor_kernels(kernel, params, cache):
    sv = RNG.normal(size=(5, 4)).round(2)
    node = helper.make_node("SVMRegressor", ["x"], ["y"], domain=ML, kernel_type=kernel, kernel_params=params,
                            support_vectors=sv.reshape(-1).tolist(), coefficients=[0.5, -1.0, 0.25, 2.0, -0.5],
                            n_supports=5, rho=[0.3])
    run_both(ml_model(node, [("x", F, [7, 4])], [("y", F, [7, 1])], ml_opset=1), {"x": X4}, cache)


def _tree_attrs():
    """Two trees over 4 features: tree 0 splits on x0 then x2, tree 1 on x3."""
    return dict(nodes_treeids=[0, 0, 0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 3, 4, 0, 1, 2],
                nodes_featureids=[0, 2, 0, 0, 0, 3, 0, 0], nodes_values=[0.1, -0.3, 0, 0, 0, 0.5, 0, 0],
                nodes_truenodeids=[1, 3, 0, 0, 0, 1, 0, 0], nodes_falsenodeids=[2, 4, 0, 0, 0, 2, 0, 0],
                nodes_missing_value_tracks_true=[1, 0, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"])
@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
def test_tree_ensemble_regressor(mode, aggregate, cache):
    """onnx.reference as the oracle: onnxruntime adds base_values only to targets some leaf reached."""
    a = _tree_attrs()
    modes = [mode, mode, "LEAF", "LEAF", "LEAF", mode, "LEAF", "LEAF"]
    node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain=ML, nodes_modes=modes, **a,
                            n_targets=2, aggregate_function=aggregate, base_values=[0.5, -0.5],
                            target_treeids=[0, 0, 0, 0, 1, 1], target_nodeids=[2, 3, 4, 4, 1, 2],
                            target_ids=[0, 1, 0, 1, 0, 1], target_weights=[1.0, 2.0, -3.0, 4.0, 5.0, -6.0])
    x = X4.copy()
    x[0, 0], x[1, 2], x[2, 3] = np.nan, 0.1 if mode == "BRANCH_EQ" else x[1, 2], 0.5
    if mode in ("BRANCH_EQ", "BRANCH_NEQ"):
        x[3, 0] = 0.1
    run_both(ml_model(node, [("x", F, [7, 4])], [("y", F, [7, 2])]), {"x": x}, cache, oracle=reference)


def test_tree_ensemble_v5_double_and_membership(cache):
    splits = helper.make_tensor("s", D, [3], [0.0, 1.0, 0.0])
    node = helper.make_node(
        "TreeEnsemble", ["x"], ["y"], domain=ML, n_targets=2, aggregate_function=1, post_transform=0,
        tree_roots=[0], nodes_featureids=[0, 1, 2], nodes_splits=splits,
        nodes_modes=helper.make_tensor("m", TensorProto.UINT8, [3], [6, 2, 0]),
        membership_values=helper.make_tensor("v", D, [4], [1.0, 3.0, np.nan, 2.0]),
        nodes_truenodeids=[1, 0, 2], nodes_trueleafs=[0, 1, 1], nodes_falsenodeids=[2, 1, 3], nodes_falseleafs=[0, 1, 1],
        leaf_targetids=[0, 1, 0, 1], leaf_weights=helper.make_tensor("w", D, [4], [1.0, 2.0, 3.0, 4.0]))
    m = ml_model(node, [("x", D, [6, 3])], [("y", D, [6, 2])], ml_opset=5)
    x = np.array([[1, 2, 0], [3, 0, 1], [2, 0, -1], [0, 5, 0], [1, -1, 0], [7, 0, 2]], np.float64)
    run_both(m, {"x": x}, cache, oracle=reference)


def test_ml_ops_live_in_their_domain():
    from compiler.registry import lookup
    assert lookup("TreeEnsembleClassifier", ML) is not None
    assert lookup("TreeEnsembleClassifier") is None and lookup("Add", ML) is None
    assert lookup("Add", "ai.onnx") is lookup("Add")


@pytest.mark.parametrize("string_labels", [False, True], ids=["int_labels", "string_labels"])
def test_logistic_regression_with_zipmap(string_labels, cache):
    """skl2onnx's default ZipMap: the probabilities come back as one {label: p} dict
    per row (zipped on the host), as onnxruntime gives them."""
    y = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS] if string_labels else Y_IRIS
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, y)
    onx = skl2onnx.to_onnx(model, X_IRIS[:1])
    assert any(n.op_type == "ZipMap" for n in onx.graph.node)
    feeds = {onx.graph.input[0].name: X_IRIS}
    labels, maps = compile(onx, cache_dir=cache)(X_IRIS)
    want_labels, want_maps = onnxruntime(onx, feeds)
    np.testing.assert_array_equal(labels, model.predict(X_IRIS))
    assert [list(m) for m in maps] == [list(m) for m in want_maps]
    got = np.array([list(m.values()) for m in maps])
    np.testing.assert_allclose(got, model.predict_proba(X_IRIS), atol=1e-4)
    np.testing.assert_allclose(got, np.array([list(m.values()) for m in want_maps]), atol=1e-5)
