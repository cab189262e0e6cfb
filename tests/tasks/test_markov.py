"""Markov sources and n-gram predictors.

Tolerances come from the sample size: means of i.i.d. per-sequence quantities within Z = 4 standard
errors; transition frequencies by a chi-square test at the 1e-4 level (given the visits to a context,
the next-symbol counts are multinomial, so Pearson's statistic is asymptotically chi-square with
n_contexts * (n_symbols - 1) degrees of freedom).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from workbench.tasks import markov as M

Z = 4.0


def _sample(task, seed, batch_size):
    return eqx.filter_jit(task.sample)(jax.random.key(seed), batch_size)


def _losses(predictor, batch):
    return np.asarray(eqx.filter_jit(M.batch_losses)(predictor, batch), np.float64)


def _se(x):
    return x.std(ddof=1) / np.sqrt(len(x))


def test_fixed_source_transition_frequencies_and_stationarity():
    task = M.FixedMarkovSource.random(3, 2, alpha=1.0, seq_len=60, key=jax.random.key(0))
    b = _sample(task, 1, 1000)
    tokens, table = np.asarray(b.tokens), np.asarray(task.transitions, np.float64)
    ctx = tokens[:, :-2] * 3 + tokens[:, 1:-1]
    counts = np.zeros((9, 3))
    np.add.at(counts, (ctx.ravel(), tokens[:, 2:].ravel()), 1)
    expected = counts.sum(1, keepdims=True) * table
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < stats.chi2.ppf(1 - 1e-4, df=9 * 2), chi2
    # Started in the stationary distribution, the first context of each sequence is distributed as pi.
    pi = np.asarray(M.stationary(task.transitions), np.float64)
    freq = np.bincount(tokens[:, 0] * 3 + tokens[:, 1], minlength=9) / 1000
    assert np.all(np.abs(freq - pi) <= Z * np.sqrt(pi * (1 - pi) / 1000) + 1e-9)


def test_binary_and_switching_sources():
    src = M.FixedMarkovSource.binary(0.5, 0.8)
    # Makkuva et al. (icl_papers.md): entropy rate 0.619 and unigram H(pi) 0.666 nats; closed forms below.
    pi0 = 0.8 / 1.3
    assert float(M.entropy_rate(src.transitions)) == pytest.approx(pi0 * M.binary_entropy(0.5) + (1 - pi0) * M.binary_entropy(0.8), rel=1e-5)
    assert float(M.entropy_rate(src.transitions)) == pytest.approx(0.619, abs=5e-4)
    assert M.binary_entropy(pi0) == pytest.approx(0.666, abs=5e-4)
    sw = M.FixedMarkovSource.switching(order=2, delta=0.2, seq_len=50)
    assert float(M.entropy_rate(sw.transitions)) == pytest.approx(M.binary_entropy(0.2), rel=1e-5)
    tokens = np.asarray(_sample(sw, 2, 400).tokens)
    flips = (tokens[:, 2:] != tokens[:, :-2]).ravel()  # i.i.d. Bernoulli(delta) by construction
    assert abs(flips.mean() - 0.2) <= Z * np.sqrt(0.2 * 0.8 / flips.size)


def test_dirichlet_rows_have_dirichlet_moments():
    v_, alpha = 3, 0.5
    b = _sample(M.DirichletMarkovICL(v_, seq_len=4, alpha=alpha), 3, 3000)
    p = np.asarray(b.transitions, np.float64)[:, :, 0].ravel()
    # Dirichlet(alpha 1): E p = 1 / V, E p^2 = (alpha + 1) / (V (V alpha + 1)).
    for values, expected in ((p, 1 / v_), (p**2, (alpha + 1) / (v_ * (v_ * alpha + 1)))):
        assert abs(values.mean() - expected) <= Z * _se(values)


def test_ngram_counts_match_python():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 3, 30)
    for order, alpha in ((0, 1.0), (1, 0.5), (2, 2.0)):
        probs = np.asarray(jax.jit(M.ngram(order, alpha, 3))(jnp.asarray(tokens)))
        for t in range(30):
            if t < order - 1:
                expected = np.full(3, 1 / 3)
            else:
                ctx = tuple(tokens[t - order + 1 : t + 1])
                nxt = [tokens[s + 1] for s in range(order - 1, t) if tuple(tokens[s - order + 1 : s + 1]) == ctx]
                if order == 0:
                    nxt = list(tokens[: t + 1])
                counts = np.bincount(np.asarray(nxt, int), minlength=3)
                expected = (counts + alpha) / (counts.sum() + 3 * alpha)
            np.testing.assert_allclose(probs[t], expected, rtol=1e-5)


def test_add_alpha_is_bayes_optimal_on_dirichlet_chains():
    # With a uniform first symbol, add-alpha of the right order and alpha is the exact posterior
    # predictive, so its expected log-loss is the lowest; each paired difference must be > Z SE.
    task = M.DirichletMarkovICL(3, seq_len=40, order=1, alpha=0.5, init="uniform")
    b = _sample(task, 4, 2000)
    bayes = _losses(M.ngram(1, 0.5, 3), b).mean(1)
    for other in (M.ngram(1, 1.0, 3), M.ngram(1, 0.1, 3), M.ngram(0, 0.5, 3), M.ngram(2, 0.5, 3), M.uniform(3)):
        diff = _losses(other, b).mean(1) - bayes
        assert diff.mean() > Z * _se(diff), (diff.mean(), _se(diff))
    oracle = np.asarray(M.oracle_losses(b, 1), np.float64).mean(1)
    assert (bayes - oracle).mean() > Z * _se(bayes - oracle)  # knowing the table is better still


@pytest.mark.slow
def test_edelman_loss_levels():
    # icl_papers.md (computed independently): k = 2, T = 100, Dirichlet(1), stationary start,
    # mean CE over the 99 predictions: unigram 0.579, Bayes bigram 0.511, oracle 0.481 (+-0.0005 rounding).
    b = _sample(M.DirichletMarkovICL(2, seq_len=100), 5, 3000)
    oracle = np.asarray(M.oracle_losses(b, 1), np.float64).mean(1)
    for values, ref in ((_losses(M.ngram(0, 1.0, 2), b).mean(1), 0.579), (_losses(M.ngram(1, 1.0, 2), b).mean(1), 0.511), (oracle, 0.481)):
        assert abs(values.mean() - ref) <= Z * _se(values) + 5e-4, (values.mean(), ref, _se(values))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: M.DirichletMarkovICL(3, seq_len=10, alpha=0.0), "alpha"),
        (lambda: M.DirichletMarkovICL(1, seq_len=10), "n_symbols"),
        (lambda: M.DirichletMarkovICL(2, seq_len=-5), "seq_len"),
        (lambda: M.DirichletMarkovICL(2, seq_len=10, order=-1), "order"),
        (lambda: M.FixedMarkovSource.binary(0.0, 0.5), "p"),
        (lambda: M.FixedMarkovSource.switching(2, 1.5), "delta"),
        (lambda: M.FixedMarkovSource(jnp.ones((3, 2)) / 2, n_symbols=2, order=1, seq_len=8), "transitions"),
        (lambda: M.ngram(1, -1.0, 3), "alpha"),
    ],
)
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"\.{name} "):
        make()


def test_bigram_backcopy_copies_after_triggers_and_its_bayes_predictor_is_exact():
    task = M.BigramBackcopy.random(6, 2, seq_len=24, key=jax.random.key(0))
    batch = task.sample(jax.random.key(1), 64)
    x, trig = np.asarray(batch.tokens), np.asarray(batch.copy)
    assert np.all(x[:, 0] == 0) and np.all(x[:, 1:] >= 1) and np.all(x[:, 1] > task.n_triggers)
    assert np.array_equal(trig, (x >= 1) & (x <= 2)) and trig[:, :-1].any()
    t = np.nonzero(trig[:, :-1])
    assert np.array_equal(x[t[0], t[1] + 1], x[t[0], t[1] - 1])  # the symbol after a trigger copies the one before
    assert not np.any(trig[:, 1:] & trig[:, :-1])  # no two triggers in a row
    probs = np.asarray(jax.vmap(task.bayes_probs)(batch.tokens))
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-6) and np.all(probs[..., 0] == 0)
    picked = np.take_along_axis(probs[:, :-1], x[:, 1:, None], -1)[..., 0]
    assert np.all(picked > 0) and np.all(picked[trig[:, :-1]] == 1.0)
    with pytest.raises(ValueError, match="n_triggers"):
        M.BigramBackcopy.random(4, 4, seq_len=8, key=jax.random.key(0))
