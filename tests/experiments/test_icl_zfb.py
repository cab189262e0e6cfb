import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import icl_zfb
from workbench.theory import zfb


@pytest.fixture(scope="module")
def tiny_run(tiny_icl_zfb):
    return tiny_icl_zfb[:2]


def test_run_and_analyse_write_checks_and_figures(tiny_run):
    out, summary = tiny_run
    names = [c.name for c in summary.checks]
    assert names == ["error_M5_isotropic", "error_M20_isotropic", "error_M80_isotropic", "error_M20_diagonal",
                     "preconditioner_isotropic", "preconditioner_diagonal", "shift_error_M80", "shift_error_floor"]
    by_name = {c.name: c.check for c in summary.checks}
    assert by_name["error_M20_isotropic"].paper == pytest.approx(1.154, abs=1e-3)
    assert set(summary.figures) >= {"error_vs_m_isotropic", "covariate_shift", "preconditioner_diagonal"}


def test_eval_closed_form_predictor_matches_the_formula(tiny_run):
    """The minimiser's Monte Carlo error on the eval prompts agrees with the closed form (4 standard errors)."""
    out, _ = tiny_run
    extras = [json.loads(p.read_text()) for p in sorted(out.rglob("extras.json"))]
    for e in extras:
        for label in ("isotropic", "diagonal", "diagonal_shift"):
            row = e[label]
            for mc, se, formula in zip(row["theory"], row["theory_se"], row["formula"], strict=True):
                assert abs(mc - formula) < 4 * se


def test_preconditioner_readout_of_a_planted_minimiser():
    """An LSA whose bilinear form is set to Gamma^{-1} reads out as Gamma^{-1}."""
    lsa = icl_zfb.LinearSelfAttention(icl_zfb.D, key=jax.random.key(0))
    a = zfb.preconditioner(icl_zfb.covariance("diagonal"), 20)
    kq = np.zeros((6, 6)); kq[:5, :5] = a
    pv = np.zeros((6, 6)); pv[5, 5] = -1.0
    lsa = eqx.tree_at(lambda m: (m.W_Q, m.W_K, m.W_V, m.P), lsa,
                      tuple(jnp.asarray(x, jnp.float32) for x in (kq, np.eye(6), pv, np.eye(6))))
    np.testing.assert_allclose(np.asarray(icl_zfb.preconditioner(lsa)), a, rtol=1e-5)


def test_presets_are_complete_and_quick_is_small():
    presets = icl_zfb.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    assert presets["quick"].steps * presets["quick"].batch_size < presets["paper"].steps * presets["paper"].batch_size / 4
