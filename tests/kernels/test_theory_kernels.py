"""Theory files for the dynamics kernels: sympy derivations and the Att-SVM optimality conditions
evaluated on the JAX solvers' outputs."""

import jax
import numpy as np

from workbench.kernels.attention_svm import optimal_tokens, sample_svm_data
from workbench.kernels.svm_solver import att_svm_problem, solve_att_svm
from workbench.theory import attention_svm as tsvm
from workbench.theory import scan_snap as tss


def test_entropy_at_zero_is_2151():
    assert abs(float(tss.entropy_at_zero()) - 2.151) < 5e-4


def test_z_gradient_formula_symbolic():
    residual = tss.z_gradient_residual()
    assert max(abs(float(v)) for v in residual) < 1e-12


def test_frobenius_stationarity_symbolic():
    assert tsvm.frobenius_stationarity().is_zero_matrix


def _solved(norm):
    with jax.enable_x64(True):
        data = jax.vmap(lambda k: sample_svm_data(k, 4, 5, 6))(jax.random.split(jax.random.key(2), 3))
        ids = jax.vmap(optimal_tokens)(data)
        problems = jax.vmap(att_svm_problem)(data.X, data.z, ids)
    return solve_att_svm(np.asarray(data.X), np.asarray(data.z), np.asarray(ids), norm=norm), problems


def test_frobenius_kkt_on_solver_output():
    sol, problems = _solved("fro")
    for i in range(3):
        assert sol.feasible[i]
        r = tsvm.kkt_residuals(sol.W[i], sol.dual[i], *(np.asarray(a[i]) for a in (problems.u, problems.z, problems.b)))
        assert r["stationarity"] < 1e-6 and r["primal"] < 1e-9 and r["dual"] == 0.0 and r["complementarity"] < 1e-6, r


def test_nuclear_certificate_on_solver_output():
    sol, problems = _solved("nuc")
    for i in range(3):
        r = tsvm.nuclear_certificate(sol.W[i], sol.dual[i], *(np.asarray(a[i]) for a in (problems.u, problems.z, problems.b)))
        assert r["dual_op_norm"] < 1 + 1e-4 and r["relative_gap"] < 1e-4, r
