import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.interp import attention as A
from workbench.models import Transformer, TransformerConfig, run_with_cache, sites


def _rows(weights: dict[int, int], seq: int) -> np.ndarray:
    """A causal pattern `[seq, seq]` whose query q attends fully to `weights.get(q, 0)`."""
    pattern = np.zeros((seq, seq), np.float32)
    for q in range(seq):
        pattern[q, weights.get(q, 0)] = 1.0
    return pattern


def test_pattern_scores_on_hand_built_patterns():
    tokens = jnp.array([3, 1, 4, 3, 1, 4])  # A = [3, 1, 4] twice
    seq = 6
    prev = _rows({q: q - 1 for q in range(1, seq)}, seq)
    induction = _rows({3: 1, 4: 2, 5: 3}, seq)  # q attends to the token after the earlier copy of its token
    sink = _rows({}, seq)
    pattern = jnp.asarray(np.stack([prev, induction, sink]))
    np.testing.assert_allclose(A.prev_token_score(pattern), [1.0, 0.2, 0.2])
    # queries 3, 4, 5 have an earlier copy; head 0 gives them 0, head 1 all of its mass, head 2 none
    np.testing.assert_allclose(A.induction_score(pattern, tokens), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(A.sink_mass(pattern), [1 / 3, 1 / 2, 1.0])


def test_induction_score_splits_mass_over_several_earlier_copies():
    tokens = jnp.array([0, 1, 0, 2, 0])  # query 4 (token 0) has keys 1 and 3 after earlier 0s
    pattern = np.zeros((1, 5, 5), np.float32)
    pattern[0, 2, 1] = 1.0  # query 2: key 1 follows the 0 at position 0
    pattern[0, 4, [1, 3, 4]] = [0.25, 0.25, 0.5]
    np.testing.assert_allclose(A.induction_score(jnp.asarray(pattern), tokens), [0.75])


CONFIG = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=5, d_vocab=8, attn_only=True)


@pytest.fixture(scope="module")
def model():
    return Transformer(CONFIG, key=jax.random.key(0))


def test_circuits_and_composition_scores_against_a_direct_computation(model):
    W = lambda l, name: np.asarray(getattr(model.blocks[l].attn, name), np.float64)  # noqa: E731
    ov = lambda l, h: W(l, "W_V")[h] @ W(l, "W_O")[h]  # noqa: E731
    qk = lambda l, h: W(l, "W_Q")[h] @ W(l, "W_K")[h].T  # noqa: E731
    np.testing.assert_allclose(A.ov_circuit(model, 1)[0], ov(1, 0), rtol=1e-5)
    np.testing.assert_allclose(A.qk_circuit(model, 0)[1], qk(0, 1), rtol=1e-5)
    f = np.linalg.norm
    for kind, right in (("q", qk), ("k", lambda l, h: qk(l, h).T), ("v", ov)):
        scores = A.composition_scores(model, kind, 0, 1)
        assert scores.axes == ("head_a", "head_b")
        expected = [[f(ov(0, a) @ right(1, b)) / (f(ov(0, a)) * f(right(1, b))) for b in range(2)] for a in range(2)]
        np.testing.assert_allclose(scores.values, expected, rtol=1e-4)
    q, k = A.composition_scores(model, "q", 0, 1).values, A.composition_scores(model, "k", 0, 1).values
    assert not np.allclose(q, k)  # Q- and K-composition read different sides of W_QK
    with pytest.raises(ValueError, match="layer_a < layer_b"):
        A.composition_scores(model, "q", 1, 1)


def test_copying_score_of_identity_and_negated_ov(model):
    eye = jnp.eye(8)
    w_v = jnp.stack([eye[:, :4], eye[:, :4]])
    w_o = jnp.stack([eye[:4], -eye[:4]])  # head 0 copies (OV = projection), head 1 suppresses
    m = eqx.tree_at(lambda m: (m.embed.W_E, m.unembed.W_U, m.blocks[0].attn.W_V, m.blocks[0].attn.W_O), model,
                    (eye, eye, w_v, w_o))
    np.testing.assert_allclose(A.copying_score(m, 0), [1.0, -1.0], rtol=1e-6)
    full = A.full_ov_circuit(m, 0)
    np.testing.assert_allclose(full[0], np.diag([1.0] * 4 + [0.0] * 4), atol=1e-6)
    scores = A.copying_score(model, 0)  # random heads: strictly inside (-1, 1)
    assert scores.shape == (2,) and np.all(np.abs(scores) < 1)


def test_head_scores_average_the_pattern_scores_over_prompts(model):
    xs = jax.random.randint(jax.random.key(1), (3, 5), 0, 8)
    result = A.head_scores(model, xs, "prev_token")
    assert result.axes == ("layer", "head") and result.values.shape == (2, 2)
    name = sites.attn(1, "pattern")
    direct = np.mean([A.prev_token_score(run_with_cache(model, x, [name])[1][name]) for x in xs], 0)
    np.testing.assert_allclose(result.values[1], direct, rtol=1e-5)
