"""Host-side string and map ops (runtime/host_strings.py), node by node: the
ONNX conformance cases of these ops, random inputs against onnx.reference,
scikit-learn (through skl2onnx) and onnxruntime for the ONNX-ML map ops; and
the compiled integer TfIdfVectorizer against onnx.reference."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import compile
from compiler.host_attrs import node_attrs
from runtime import InputError
from runtime.host_strings import ML, NON_TENSOR_OPS, OPS
from tests.conformance import _array, cases, compare

S, I64, I32, F, B = TensorProto.STRING, TensorProto.INT64, TensorProto.INT32, TensorProto.FLOAT, TensorProto.BOOL
WORDS = ["a", "b", "ab", "cat", "dog", "cats", "x.y", "1.5", "42", "Mon", "MON", "a b", ""]
rng = np.random.default_rng(0)


def run_node(node, *inputs):
    """Our host function for `node`, on its decoded attributes."""
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    key = (domain, node.op_type)
    return (OPS.get(key) or NON_TENSOR_OPS[key])(node_attrs(node), *inputs)


def strings(shape, words=WORDS):
    return np.array(rng.choice(np.array(words, dtype=object), size=shape), dtype=object).reshape(shape)


# conformance cases -------------------------------------------------------------------------

def _is_host(case) -> bool:
    """One node of ours that takes or gives strings (string Equal, not numeric)."""
    g = case.model.graph
    key = (g.node[0].domain if g.node[0].domain != "ai.onnx" else "", g.node[0].op_type) if len(g.node) == 1 else None
    if key not in OPS and key not in NON_TENSOR_OPS:
        return False
    types = [v.type.tensor_type.elem_type for v in list(g.input) + list(g.output)]
    return S in types or g.node[0].op_type == "TfIdfVectorizer"


HOST_CASES = sorted(n for n, c in cases().items() if _is_host(c))


def test_host_cases_found():
    assert len(HOST_CASES) >= 33, HOST_CASES


@pytest.mark.parametrize("name", HOST_CASES)
def test_conformance_case(name, all_cases):
    case = all_cases[name]
    node = case.model.graph.node[0]
    for inputs, expected in case.data_sets:
        got = run_node(node, *map(_array, inputs))
        assert len(got) == len(expected)
        for o, g, w in zip(case.model.graph.output, got, expected):
            compare(o.name, g, w)


# random inputs against onnx.reference ---------------------------------------------------------

def _model(node, feeds, outputs, opset=20, ml=None):
    ins = [helper.make_tensor_value_info(k, S if v.dtype == object else helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in feeds.items()]
    outs = [helper.make_tensor_value_info(n, t, rest[0] if rest else None) for n, t, *rest in outputs]
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(ML, ml)] if ml else [])
    return helper.make_model(helper.make_graph([node], "t", ins, outs), opset_imports=opsets)


def check_reference(node, feeds, outputs, opset=20, ml=None, oracle=None):
    """Our outputs equal onnx.reference's (strings compared as object arrays)."""
    from onnx.reference import ReferenceEvaluator
    m = _model(node, feeds, outputs, opset, ml)
    want = (oracle or (lambda m, feeds: ReferenceEvaluator(m).run(None, feeds)))(m, feeds)
    got = run_node(node, *feeds.values())
    assert len(got) == len(want)
    for (name, *_), g, w in zip(outputs, got, want):
        w = np.asarray(w)
        compare(name, g, w.astype(object) if w.dtype.kind == "U" else w)


def onnxruntime(m, feeds):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def check_onnxruntime(node, feeds, outputs, opset=20, ml=None):
    check_reference(node, feeds, outputs, opset, ml, oracle=onnxruntime)


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((2, 1), (1, 3)), ((), (5,)), ((0, 2), (2,))])
@pytest.mark.parametrize("op,out", [("StringConcat", S), ("Equal", B)])
def test_binary_random(op, out, shapes):
    feeds = {"x": strings(shapes[0]), "y": strings(shapes[1])}
    check_reference(helper.make_node(op, ["x", "y"], ["z"]), feeds, [("z", out)])


@pytest.mark.parametrize("attrs", [{}, {"delimiter": ""}, {"delimiter": "."}, {"delimiter": "ab"},
                                   {"delimiter": " ", "maxsplit": 1}, {"maxsplit": 0}])
def test_string_split_random(attrs):
    x = np.array([" ".join(strings(rng.integers(0, 4))) + "." + str(i) for i in range(6)], dtype=object).reshape(2, 3)
    check_reference(helper.make_node("StringSplit", ["x"], ["y", "z"], **attrs), {"x": x}, [("y", S), ("z", I64)])


@pytest.mark.parametrize("pattern", ["[a-z]+", r"\d+(\.\d+)?", "(cat|dog)s?", r"\w*\s\w*", "", r"(?i)mon"])
def test_regex_full_match_random(pattern):
    check_reference(helper.make_node("RegexFullMatch", ["x"], ["y"], pattern=pattern),
                    {"x": strings((4, 5))}, [("y", B)])


def test_regex_is_ascii_like_re2():
    """\\d is [0-9] in RE2 (and here), not every Unicode digit as in plain re."""
    got, = run_node(helper.make_node("RegexFullMatch", ["x"], ["y"], pattern=r"\d+"),
                    np.array(["123", "\u0661\u0662"], dtype=object))
    np.testing.assert_array_equal(got, [True, False])


NORMALIZER_WORDS = ["monday", "Monday", "MONDAY", "tuesday", "Tuesday", "fish", "cat", "a monday", ""]


@pytest.mark.parametrize("shape", [(7,), (1, 7)])
@pytest.mark.parametrize("action", ["NONE", "LOWER", "UPPER"])
@pytest.mark.parametrize("sensitive", [0, 1])
def test_string_normalizer_random(shape, action, sensitive):
    """Against onnxruntime, which follows the spec where onnx.reference does not:
    stopwords are whole elements, case-insensitive even with NONE, "" stays."""
    node = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action=action, locale="C",
                            is_case_sensitive=sensitive, stopwords=["monday", "Fish"])
    check_onnxruntime(node, {"x": strings(shape, NORMALIZER_WORDS)}, [("y", S)], opset=10)


LABELS = [
    ({"keys_strings": ["a", "cat", "dog"], "values_int64s": [7, 8, 9], "default_int64": 42}, S, I64, 2),
    ({"keys_int64s": [1, 5, 9], "values_strings": ["one", "five", "nine"]}, I64, S, 2),
    ({"keys_strings": ["a", "b"], "values_strings": ["A", "B"], "default_string": "?"}, S, S, 2),
    ({"keys_strings": ["a", "b"], "values_floats": [0.5, 1.5]}, S, F, 2),
    ({"keys_tensor": helper.make_tensor("k", S, [3], [b"a", b"cat", b"x.y"]),
      "values_tensor": helper.make_tensor("v", TensorProto.INT16, [3], [3, 4, 5]),
      "default_tensor": helper.make_tensor("d", TensorProto.INT16, [1], [-7])}, S, TensorProto.INT16, 4),
    ({"keys_int64s": [2, 3], "values_tensor": helper.make_tensor("v", S, [2], [b"two", b"three"]),
      "default_tensor": helper.make_tensor("d", S, [1], [b"none"])}, I64, S, 4),
]


@pytest.mark.parametrize("attrs,tin,tout,opset", LABELS)
def test_label_encoder_random(attrs, tin, tout, opset):
    x = strings((3, 4)) if tin == S else rng.integers(0, 10, (3, 4)).astype(np.int64)
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain=ML, **attrs)
    check_reference(node, {"x": x}, [("y", tout)], opset=19, ml=opset)


def _tfidf_node(pool, counts, indexes, mode="TF", lo=1, hi=2, skip=0, weights=None):
    kw = {"pool_strings" if isinstance(pool[0], str) else "pool_int64s": pool}
    if weights is not None:
        kw["weights"] = weights
    return helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode=mode, min_gram_length=lo, max_gram_length=hi,
                            max_skip_count=skip, ngram_counts=counts, ngram_indexes=indexes, **kw)


TFIDF = [  # mode, gram lengths, skips, weights
    dict(mode="TF", lo=1, hi=2, skip=0), dict(mode="TF", lo=2, hi=3, skip=2),
    dict(mode="IDF", lo=1, hi=3, skip=1, weights=[0.5, 1, 2, 3, 4, 5, 6, 7]),
    dict(mode="TFIDF", lo=1, hi=1, skip=3, weights=[2.0] * 8),
    dict(mode="TFIDF", lo=1, hi=3, skip=4, weights=[1.0, 2, 3, 4, 5, 6, 7, 8]),
]
POOL = [2, 3, 0] + [2, 3, 1, 1, 4, 2] + [1, 0, 2]   # unigrams, bigrams, one trigram
COUNTS, INDEXES = [0, 3, 9], [7, 0, 1, 2, 3, 4, 5]   # 8 columns, column 6 unused


@pytest.mark.parametrize("cfg", TFIDF)
def test_tfidf_strings_random(cfg):
    words = ["w0", "w1", "w2", "w3", "w4", "w5"]
    node = _tfidf_node([words[t] for t in POOL], COUNTS, INDEXES, **cfg)
    x = np.array([words[t] for t in rng.integers(0, 6, 24)], dtype=object).reshape(2, 12)
    check_reference(node, {"x": x}, [("y", F)], opset=9)


@pytest.mark.parametrize("mode", ["IDF", "TFIDF"])
def test_tfidf_no_weights_onnxruntime(mode, cache):
    """Without weights (onnx.reference fails there): strings on the host, integers compiled."""
    words = ["w0", "w1", "w2", "w3", "w4", "w5"]
    ids = rng.integers(0, 6, 24).reshape(2, 12)
    for pool, x in [([words[t] for t in POOL], np.array([words[t] for t in ids.reshape(-1)], dtype=object).reshape(2, 12)),
                    (POOL, ids.astype(np.int64))]:
        node = _tfidf_node(pool, COUNTS, INDEXES, mode=mode, lo=1, hi=3, skip=1)
        check_onnxruntime(node, {"x": x}, [("y", F)], opset=9)
        if x.dtype != object:
            m = _model(node, {"x": x}, [("y", F, (2, 8))], opset=9)
            compare("y", compile(m, cache_dir=cache)(x), onnxruntime(m, {"x": x})[0])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfidf-cache"))


@pytest.mark.parametrize("cfg", TFIDF)
@pytest.mark.parametrize("shape,dtype", [((3, 15), np.int64), ((20,), np.int32)])
def test_tfidf_compiled(cfg, shape, dtype, cache):
    """Integer tokens run compiled; the host function agrees too."""
    from onnx.reference import ReferenceEvaluator
    node = _tfidf_node(POOL, COUNTS, INDEXES, **cfg)
    x = rng.integers(0, 6, shape).astype(dtype)
    m = _model(node, {"x": x}, [("y", F, shape[:-1] + (8,))], opset=9)
    want, = ReferenceEvaluator(m).run(None, {"x": x})
    compare("y", compile(m, cache_dir=cache)(x), want)
    compare("y", run_node(node, x)[0], want)


# ONNX-ML map ops against scikit-learn and onnxruntime ---------------------------------------

def test_dict_vectorizer_sklearn():
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType
    from sklearn.feature_extraction import DictVectorizer
    rows = [{"cat": 1.0, "dog": 2.5}, {"dog": -1.0, "fish": 4.0}, {"cat": 3.0, "bird": 0.5}]
    dv = DictVectorizer(sparse=False).fit(rows)
    m = skl2onnx.convert_sklearn(dv, initial_types=[("x", DictionaryType(StringTensorType([1]), FloatTensorType([1])))])
    node, = [n for n in m.graph.node if n.op_type == "DictVectorizer"]
    declared = onnx.helper.tensor_dtype_to_np_dtype(m.graph.output[0].type.tensor_type.elem_type)
    for row in rows + [{"cat": 2.0}, {}]:
        got = run_node(node, row)[0].astype(declared)    # as the plan casts to the declared type
        np.testing.assert_allclose(got, dv.transform([row]).astype(declared), rtol=1e-6)
        assert got.dtype == np.float32 and got.shape == (1, len(dv.feature_names_))
    got = run_node(node, rows)[0]
    np.testing.assert_allclose(got, dv.transform(rows))


def test_dict_vectorizer_pipeline_compiled(cache):
    """A map input end to end: DictVectorizer on the host, the regressor compiled."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    rows = [{"a": 1.0, "b": 2.0}, {"b": 3.0, "c": 1.5}, {"a": 0.5, "c": 2.0}, {"a": 2.0, "b": -1.0}]
    pipe = make_pipeline(DictVectorizer(sparse=False), LinearRegression()).fit(rows, [1.0, 2.0, 3.0, 0.5])
    m = skl2onnx.to_onnx(pipe, initial_types=[("x", DictionaryType(StringTensorType([]), FloatTensorType([])))],
                         target_opset=17)
    fn = compile(m, cache_dir=cache)
    for row in rows + [{"c": 4.0}]:
        np.testing.assert_allclose(fn(row).reshape(-1), pipe.predict([row]), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="expected a map"):
        fn([1.0, 2.0])


def test_dict_vectorizer_int_keys_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    node = helper.make_node("DictVectorizer", ["x"], ["y"], domain=ML, int64_vocabulary=[3, 1, 7])
    x_type = helper.make_map_type_proto(I64, helper.make_tensor_type_proto(F, None))
    g = helper.make_graph([node], "t", [helper.make_value_info("x", x_type)],
                          [helper.make_tensor_value_info("y", F, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(ML, 1)])
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for row in [{1: 2.5, 7: -1.0}, {3: 4.0, 9: 1.0}]:    # onnxruntime refuses an empty map
        want, = sess.run(None, {"x": row})
        got, = run_node(node, row)
        compare("y", got.astype(np.float32), want)    # cast to the declared type, as the plan does


def test_label_encoder_sklearn():
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.preprocessing import LabelEncoder
    le = LabelEncoder().fit(["paris", "tokyo", "amsterdam", "rome"])
    m = skl2onnx.convert_sklearn(le, initial_types=[("x", StringTensorType([None]))])
    node, = [n for n in m.graph.node if n.op_type == "LabelEncoder"]
    x = strings((9,), list(le.classes_))
    got, = run_node(node, x)
    np.testing.assert_array_equal(got, le.transform(x))


@pytest.mark.parametrize("tin,tout", [(S, I64), (I64, S)])
def test_category_mapper_onnxruntime(tin, tout):
    node = helper.make_node("CategoryMapper", ["x"], ["y"], domain=ML, cats_strings=["a", "cat", "dog"],
                            cats_int64s=[5, 1, 9], default_int64=-3, default_string="none")
    x = strings((3, 4)) if tin == S else rng.integers(0, 10, (3, 4)).astype(np.int64)
    check_onnxruntime(node, {"x": x}, [("y", tout)], opset=19, ml=1)


NUMERIC_LABELS = [
    ({"keys_int64s": [1, 5, 9, 5], "values_int64s": [10, 50, 90, 55], "default_int64": -2}, np.int64, I64, 2),
    ({"keys_floats": [0.5, -1.0, 2.25], "values_int64s": [1, 2, 3]}, np.float32, I64, 2),
    ({"keys_int64s": [3, 0], "values_floats": [0.5, 7.0], "default_float": 9.5}, np.int64, F, 2),
    ({"keys_tensor": helper.make_tensor("k", F, [3], [0.5, np.nan, 2.0]),
      "values_tensor": helper.make_tensor("v", I64, [3], [3, 4, 5]),
      "default_tensor": helper.make_tensor("d", I64, [1], [-7])}, np.float32, I64, 4),
]


@pytest.mark.parametrize("attrs,xtype,tout,opset", NUMERIC_LABELS)
def test_label_encoder_numeric_compiled(attrs, xtype, tout, opset, cache):
    """Numbers to numbers run compiled (a NaN key matches NaN inputs, as onnxruntime)."""
    keys = np.array([0.5, -1.0, 2.25, 2.0, np.nan, 1, 5, 9, 3, 0, 4])
    x = rng.choice(keys if xtype != np.int64 else keys[5:], (3, 5)).astype(xtype)
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain=ML, **attrs)
    m = _model(node, {"x": x}, [("y", tout, (3, 5))], opset=19, ml=opset)
    want, = onnxruntime(m, {"x": x})
    compare("y", compile(m, cache_dir=cache)(x), want)
    compare("y", run_node(node, x)[0], want)
