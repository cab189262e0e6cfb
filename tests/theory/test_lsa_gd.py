import jax
import numpy as np
import pytest
import sympy as sp

from workbench.tasks import LinearRegression
from workbench.tasks.predictors import gd
from workbench.tasks.regression import half_mse, predict_batch
from workbench.theory import lsa_gd


@pytest.mark.parametrize("d,n", [(1, 2), (2, 3)])
def test_construction_output_is_one_gd_step_symbolically(d, n):
    assert lsa_gd.construction_equals_gd(d, n)


@pytest.mark.parametrize("d,n", [(1, 1), (2, 2), (2, 3), (3, 2)])
def test_closed_form_loss_equals_the_monomial_expectation(d, n):
    assert sp.simplify(lsa_gd.symbolic_expected_gd_loss(d, n) - lsa_gd.closed_form_loss(d, n)) == 0


def test_closed_form_matches_monte_carlo_at_the_paper_setting():
    task = LinearRegression(d=10, n_points=10, x_dist="uniform")
    s2, m4 = task.x_moments
    eta = lsa_gd.optimal_eta(10, 10, s2, m4)
    assert eta == pytest.approx(6.0606, abs=1e-3)  # the references' independent line search: 6.06
    batch = task.sample(jax.random.key(0), 50_000)
    sq = 0.5 * (predict_batch(gd(eta), batch) - batch.query_y) ** 2
    se = float(sq.std()) / np.sqrt(sq.size)
    assert abs(float(sq.mean()) - lsa_gd.expected_gd_loss(eta, 10, 10, s2, m4)) < 4 * se
    assert float(half_mse(predict_batch(gd(0.8 * eta), batch), batch.query_y)) > float(sq.mean())
