"""LinearAttention (own kernel) against onnx.reference, over the update rules,
decay/beta layouts, GQA and an explicit past state."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from compiler import compile
from tests.helpers import model, reference

F = TensorProto.FLOAT
RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True), "gated_delta": (True, True)}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("hq,hkv,per_dim,beta_heads,past", [(4, 2, True, 2, True), (3, 1, False, 1, False)])
def test_linear_attention_matches_reference(tmp_path, rule, hq, hkv, per_dim, beta_heads, past):
    gated, delta = RULES[rule]
    b, t, dk, dv = 2, 5, 4, 3
    rng = np.random.default_rng(hq * 7 + len(rule))
    feeds = {"q": rng.standard_normal((b, t, hq * dk)), "k": rng.standard_normal((b, t, hkv * dk)) * 0.5,
             "v": rng.standard_normal((b, t, hkv * dv))}
    if past:
        feeds["s"] = rng.standard_normal((b, hkv, dk, dv))
    if gated:
        feeds["g"] = -rng.random((b, t, hkv * dk if per_dim else hkv))
    if delta:
        feeds["beta"] = rng.random((b, t, beta_heads))
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    names = ["q", "k", "v", "s" if past else "", "g" if gated else "", "beta" if delta else ""]
    while not names[-1]:
        names.pop()
    node = helper.make_node("LinearAttention", names, ["y", "state"], q_num_heads=hq, kv_num_heads=hkv,
                            update_rule=rule, scale=0.3 if past else 0.0)
    m = model([node], [(k, F, v.shape) for k, v in feeds.items()],
              [("y", F, (b, t, hq * dv)), ("state", F, (b, hkv, dk, dv))], opset=27)
    want = reference(m, feeds)
    got = compile(m, cache_dir=str(tmp_path)).run(feeds)
    for w, g in zip(want, got.values()):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
