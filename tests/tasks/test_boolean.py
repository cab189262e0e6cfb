"""Boolean function classes and learners. Frequencies within Z = 4 binomial standard errors; label
balance uses per-prompt means (i.i.d. across prompts) and their empirical standard error."""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.tasks import boolean as B

Z = 4.0


def _sample(task, seed, n):
    return eqx.filter_jit(task.sample)(jax.random.key(seed), n)


def _probs(predictor, batch):
    return np.asarray(eqx.filter_jit(B.prefix_probs)(predictor, batch))


def test_conjunction_literals_and_label_balance():
    task = B.Conjunction(n_vars=6, n_points=20)
    b = _sample(task, 0, 2000)
    params, ys = np.asarray(b.params), np.asarray(b.ys)
    for sign in (1, -1):
        f = (params == sign).mean()
        assert abs(f - 0.15) <= Z * np.sqrt(0.15 * 0.85 / params.size)
    # P(y = 1) = p_force + (1 - p_force) E[2^-#literals] = 0.3 + 0.7 * 0.85^n.
    per_prompt = ys.mean(1)
    assert abs(per_prompt.mean() - (0.3 + 0.7 * 0.85**6)) <= Z * per_prompt.std(ddof=1) / np.sqrt(len(per_prompt))
    x, p = np.asarray(b.xs), params[:, None, :]
    np.testing.assert_array_equal(ys, np.all((p == 0) | (x == p), axis=-1))


def test_parity_and_majority_labels():
    par = _sample(B.SparseParity(n_vars=7, n_points=10, k=3), 1, 1000)
    maj = _sample(B.Majority(n_vars=7, n_points=10, k=3), 1, 1000)
    for b, rule in ((par, lambda x, s: np.sum((x < 0) & s, -1) % 2), (maj, lambda x, s: np.sum(x * s, -1) > 0)):
        s = np.asarray(b.params)
        assert np.all(s.sum(1) == 3)
        np.testing.assert_array_equal(np.asarray(b.ys), rule(np.asarray(b.xs), s[:, None, :].astype(bool) if b is par else s[:, None, :]))
    y = np.asarray(par.ys).ravel()  # uniform x: parity labels are fair coins
    assert abs(y.mean() - 0.5) <= Z * np.sqrt(0.25 / y.size)


def _brute_force_posterior(task, xs, ys, x_query):
    """P(y = 1 | data, x_query) by explicit enumeration in Python (n_vars small)."""
    num = den = 0.0
    for lits in itertools.product((0, 1, -1), repeat=task.n_vars):
        lits = np.asarray(lits)
        f = lambda x: int(np.all((lits == 0) | (x == lits)))
        n_lit = int(np.sum(lits != 0))
        prior = (task.p_literal ** n_lit) * (1 - 2 * task.p_literal) ** (task.n_vars - n_lit)
        px = lambda x: (1 - task.p_force) * 2.0**-task.n_vars + task.p_force * f(x) * 2.0 ** (n_lit - task.n_vars)
        like = math.prod(px(x) * (f(x) == y) for x, y in zip(xs, ys)) * px(x_query)
        num, den = num + prior * like * f(x_query), den + prior * like
    return num / den


def test_bayes_matches_brute_force_enumeration():
    task = B.Conjunction(n_vars=3, n_points=6)
    b = _sample(task, 2, 3)
    probs = _probs(task.bayes(), b)
    for i in range(3):
        xs, ys = np.asarray(b.xs[i]), np.asarray(b.ys[i])
        for j in range(6):
            assert probs[i, j] == pytest.approx(_brute_force_posterior(task, xs[:j], ys[:j], xs[j]), rel=1e-4)


def test_learners_exact_properties_and_ranking():
    task = B.Conjunction(n_vars=6, n_points=20)
    b = _sample(task, 3, 600)
    ys = np.asarray(b.ys)
    elim = _probs(B.elimination_conjunction, b)
    assert not np.any((elim == 1) & (ys == 0))  # elimination never predicts a false positive
    nn = _probs(B.nearest_neighbour, b)
    bayes = _probs(task.bayes(), b)
    correct = lambda p: np.where(p > 0.5, ys == 1, np.where(p < 0.5, ys == 0, 0.5)).mean(1)
    for other in (elim, nn):
        diff = correct(bayes) - correct(other)  # Bayes maximises expected accuracy: diff >= 0 up to noise
        assert diff.mean() >= -Z * diff.std(ddof=1) / np.sqrt(len(diff))
    diff = correct(bayes) - correct(nn)
    assert diff.mean() > Z * diff.std(ddof=1) / np.sqrt(len(diff))  # and clearly beats nearest neighbour
    dis = B.Disjunction(n_vars=6, n_points=20)
    bd = _sample(dis, 4, 300)
    pd = _probs(B.elimination_disjunction, bd)
    assert not np.any((pd == 0) & (np.asarray(bd.ys) == 1))  # never a false negative


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: B.SparseParity(n_vars=3, n_points=5, k=4), "k"),
        (lambda: B.Majority(n_vars=5, n_points=5, k=2), "k"),
        (lambda: B.Conjunction(n_vars=0, n_points=5), "n_vars"),
        (lambda: B.Conjunction(n_vars=4, n_points=5, p_literal=0.7), "p_literal"),
        (lambda: B.Disjunction(n_vars=4, n_points=-5), "n_points"),
    ],
)
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"\.{name} "):
        make()


def test_teaching_prefix_pins_the_conjunction():
    task = B.TeachingConjunction(n_vars=6, n_points=12)
    batch = _sample(task, 0, 64)
    xs, ys, params = (np.asarray(a) for a in (batch.xs, batch.ys, batch.params))
    k = params.sum(1)
    for i in range(64):  # one positive point, then k negatives, each one flipped literal away from it
        assert ys[i, 0] == 1 and not ys[i, 1: k[i] + 1].any()
        np.testing.assert_array_equal(xs[i, 0] > 0, params[i] == 1)
        flipped = [np.flatnonzero(xs[i, j] != xs[i, 0]).tolist() for j in range(1, k[i] + 1)]
        assert flipped == [[l] for l in np.flatnonzero(params[i])]
    # the teaching points leave one consistent monotone conjunction: elimination is exact from then on
    acc = B.prefix_accuracy(B.prefix_probs(B.elimination_monotone, batch), batch.ys)
    assert np.all(np.asarray(acc[1:]) == 1.0)
