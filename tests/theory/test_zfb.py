import numpy as np
import pytest
import sympy as sp

from workbench.theory import zfb

LAM = np.diag([4.0, 2.0, 1.0, 0.5, 0.25])


@pytest.mark.parametrize("d,n", [(2, 2), (2, 3)])
def test_sympy_minimiser_is_gamma_inverse(d, n):
    derived, closed = zfb.symbolic_minimiser(d, n)
    assert sp.simplify(derived - closed) == sp.zeros(d, d)


def test_error_formula_gives_the_references_numbers():
    for m, ref in ((5, 3.817), (20, 1.154), (80, 0.488)):
        assert zfb.expected_error(np.eye(5), 20, m) == pytest.approx(ref, abs=1e-3)
        assert zfb.isotropic_expected_error(5, 20, m) == pytest.approx(zfb.expected_error(np.eye(5), 20, m))
    assert zfb.expected_error(LAM, 20, 20) == pytest.approx(1.588, abs=1e-3)
    assert zfb.expected_error(LAM, 20, np.inf, 2 * LAM) > 0.1  # covariate shift: no vanishing error


def _prompts(rng, lam, m, count):
    xs = rng.standard_normal((count, m + 1, lam.shape[0])) * np.sqrt(np.diag(lam))
    ws = rng.standard_normal((count, lam.shape[0]))
    return xs[:, :-1], np.einsum("pnd,pd->pn", xs, ws), xs[:, -1], ws


@pytest.mark.parametrize("m,lam_test", [(5, None), (20, None), (80, "shift")])
def test_error_formula_matches_monte_carlo(m, lam_test):
    rng = np.random.default_rng(m)
    shifted = 2 * LAM if lam_test else LAM
    xs, ys, xq, _ = _prompts(rng, shifted, m, 40_000)
    a = zfb.preconditioner(LAM, 20)
    h = np.einsum("pnd,pn->pd", xs, ys[:, :-1]) / m
    sq = (np.einsum("pd,de,pe->p", xq, a, h) - ys[:, -1]) ** 2
    assert abs(sq.mean() - zfb.expected_error(LAM, 20, m, shifted)) < 4 * sq.std() / np.sqrt(sq.size)


def test_gamma_inverse_is_stationary_under_monte_carlo():
    """The gradient of E(x_q^T A h - y)^2 in A, 2 E[(y_hat - y) x_q h^T], is 0 at A = Gamma^{-1} within 4
    standard errors in every entry, and clearly not at 1.1 Gamma^{-1} (the test can fail)."""
    rng = np.random.default_rng(7)
    lam = LAM[:3, :3]
    xs, ys, xq, _ = _prompts(rng, lam, 6, 200_000)
    h = np.einsum("pnd,pn->pd", xs, ys[:, :-1]) / 6

    def z_scores(a):
        g = 2 * ((np.einsum("pd,de,pe->p", xq, a, h) - ys[:, -1])[:, None, None] * xq[:, :, None] * h[:, None, :])
        return np.abs(g.mean(0)) / (g.std(0) / np.sqrt(len(g)))

    a = zfb.preconditioner(lam, 6)
    assert z_scores(a).max() < 4
    assert z_scores(1.1 * a).max() > 10
