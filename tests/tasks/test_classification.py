"""Reddy's in-context classification: burstiness, Zipf exponent, splits and reference predictors.

Frequencies are within Z = 4 binomial standard errors. The Zipf exponent is the weighted
least-squares slope of log frequency on log rank, with weights 1 / Var(log f_k) ~ n p_k / (1 - p_k)
(delta method), and must be within Z of its standard error from that fit.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.tasks import classification as C

Z = 4.0


def _split(task, seed, n, split):
    return eqx.filter_jit(task.sample_split)(jax.random.key(seed), n, split)


def test_zipf_exponent_by_regression():
    task = C.InContextClassification(n_classes=64, n_labels=8, dim=8, p_bursty=0.0, zipf_exponent=1.3, key=jax.random.key(0))
    classes = np.asarray(_split(task, 1, 3000, "train").classes).ravel()  # i.i.d. draws
    n, counts = classes.size, np.bincount(classes, minlength=64)
    keep = counts >= 20  # log frequency is near-Gaussian only with enough counts
    f = counts[keep] / n
    x, y, wts = np.log(np.arange(1, 65)[keep]), np.log(f), n * f / (1 - f)
    xm = np.sum(wts * x) / wts.sum()
    slope = np.sum(wts * (x - xm) * y) / np.sum(wts * (x - xm) ** 2)
    se = 1 / np.sqrt(np.sum(wts * (x - xm) ** 2))
    assert abs(slope + 1.3) <= Z * se, (slope, se)


def test_burstiness_counts_and_bursty_fraction():
    task = C.InContextClassification(n_classes=100, n_labels=10, dim=8, burstiness=2, p_bursty=0.3, key=jax.random.key(2))
    b = _split(task, 3, 4000, "train")
    bursty, classes, labels = np.asarray(b.bursty), np.asarray(b.classes), np.asarray(b.labels)
    assert abs(bursty.mean() - 0.3) <= Z * np.sqrt(0.3 * 0.7 / bursty.size)
    for row, lab in zip(classes[bursty][:500], labels[bursty][:500]):
        values, counts = np.unique(row[:-1], return_counts=True)
        assert np.all(counts == 2) and len(values) == 4 and row[-1] in values
        assert lab[-1] == lab[:-1][row[:-1] == row[-1]][0]
    np.testing.assert_array_equal(labels, np.asarray(task.class_labels)[classes])  # known classes keep their labels


def test_bursty_classes_are_zipf_draws_without_replacement():
    # Two distinct classes per sequence, drawn in proportion to p_k among those left:
    # P(k in set) = p_k + sum_{i != k} p_i p_k / (1 - p_i).
    task = C.InContextClassification(n_classes=8, n_labels=4, n_context=4, dim=4, burstiness=2, zipf_exponent=1.5,
                                      key=jax.random.key(8))
    classes = np.asarray(_split(task, 9, 4000, "train").classes)[:, :-1]
    p = np.arange(1, 9.0) ** -1.5
    p /= p.sum()
    expected = p + p * (np.sum(p / (1 - p)) - p / (1 - p))
    seen = np.array([np.any(classes == k, axis=1).mean() for k in range(8)])
    assert np.all(np.abs(seen - expected) <= Z * np.sqrt(expected * (1 - expected) / len(classes))), (seen, expected)


def test_items_have_the_stated_noise():
    eps = 0.5
    task = C.InContextClassification(n_classes=40, n_labels=4, dim=16, eps=eps, key=jax.random.key(4))
    b = _split(task, 5, 1000, "iwl")
    noise = np.asarray(b.items) * np.sqrt(1 + eps**2) - np.asarray(task.centroids)[np.asarray(b.classes)]
    sq = (noise**2).sum(-1).ravel()  # eps^2 |eta|^2 with eta ~ N(0, I / D): mean eps^2
    assert abs(sq.mean() - eps**2) <= Z * sq.std(ddof=1) / np.sqrt(sq.size)


def test_splits_and_reference_predictors():
    task = C.InContextClassification(n_classes=128, n_labels=16, dim=32, eps=0.1, key=jax.random.key(6))
    acc = {}
    for split in ("iwl", "ic", "ic2"):
        b = _split(task, 7, 1000, split)
        cls = np.asarray(b.classes)
        if split == "iwl":
            assert not np.any(cls[:, :-1] == cls[:, -1:])
        else:
            assert np.all(np.any(cls[:, :-1] == cls[:, -1:], axis=1))
        assert np.all((cls == -1) == (split == "ic"))
        acc[split] = {n: np.asarray(eqx.filter_jit(C.accuracy)(p, b)) for n, p in task.predictors().items()}
    assert acc["iwl"]["in_weights"].mean() == 1.0  # eps = 0.1: nearest centroid is always right here
    assert acc["ic"]["nearest_context"].mean() == 1.0 and acc["ic2"]["nearest_context"].mean() == 1.0
    # Re-drawn labels: the in-weights answer is right with probability 1/L.
    a = acc["ic2"]["in_weights"]
    assert abs(a.mean() - 1 / 16) <= Z * np.sqrt((1 / 16) * (15 / 16) / a.size)
    # A random context label (burstiness 4 of 8): 4/8 from the query's class, plus the other class's
    # fresh label colliding with probability 1/16: E = 1/2 + (1/2)(1/16).
    r = acc["ic"]["random_context_label"]
    assert abs(r.mean() - (0.5 + 0.5 / 16)) <= Z * r.std(ddof=1) / np.sqrt(r.size)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_classes=8, n_labels=16), "n_classes"),
        (dict(n_context=-1), "n_context"),
        (dict(burstiness=3), "burstiness"),
        (dict(p_bursty=1.5), "p_bursty"),
        (dict(zipf_exponent=-1.0), "zipf_exponent"),
        (dict(eps=-0.1), "eps"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"\.{name} "):
        C.InContextClassification(**kwargs, key=jax.random.key(0))
