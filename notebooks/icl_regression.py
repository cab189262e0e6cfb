# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # In-context regression: which algorithm does the trained layer run?
#
# Zhang, Frei and Bartlett (2024) solve one linear self-attention layer trained on Gaussian
# in-context regression: it learns the preconditioner Γ⁻¹, Γ = (1 + 1/N) Λ + tr(Λ)/N · I. This
# notebook trains it (the `quick` preset of `wb run icl-zfb`), compares the learned weights and the
# error curve with the closed form of `theory/zfb.py`, and then looks at the two other algorithms the
# theory names: Newton-Schulz iterations (`theory/newton.py`) and the Bayes posterior over a finite
# task pool (`theory/bayes.py`). Set `WB_PRESET=default` for the report's numbers.

# %%
import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from workbench.experiments import icl_zfb
from workbench.run.runner import group_dir, make_config, run_experiment
from workbench.theory import bayes, newton, zfb

RUNS = Path(os.environ.get("WB_RUNS", "../runs"))
PRESET = os.environ.get("WB_PRESET", "quick")
SEEDS = [0]
OVERRIDES = os.environ.get("WB_SET", "").split()  # `key=value` config overrides, as `wb run --set`

# %% [markdown]
# ## Train (or reuse finished runs) and read the checks

# %%
summary = run_experiment("icl-zfb", preset=PRESET, seeds=SEEDS, overrides=OVERRIDES, out=RUNS, vmap=True)
for c in summary.checks:
    print(f"{c.name:26s} paper {c.check.paper:.4g}  ours {c.check.ours:.4g}  tol {c.check.tolerance:.3g}  "
          f"{'pass' if c.passed else 'MISS'}")
group = group_dir(RUNS, "icl-zfb", summary.config_hash, vmap=True)
pio.from_json((group / "figures" / "error_vs_m_diagonal.json").read_text()).show()

# %% [markdown]
# ## Open the trained layer
# The prediction is minus the query's y-slot, so the learned bilinear form on (x_i, y_i) -> x_q is
# -(P W_V)[y, y] · (W_Kᵀ W_Q)[x, x]; the other blocks should be near 0.

# %%
config = make_config(icl_zfb.EXPERIMENT, PRESET, OVERRIDES)
iso, diag = icl_zfb.load_models(config, group / "seed-0")
learned = np.asarray(icl_zfb.preconditioner(diag))
closed = zfb.preconditioner(icl_zfb.covariance("diagonal"), config.n_points)
print("diag of learned:", np.round(np.diag(learned), 4))
print("diag of Γ⁻¹:    ", np.round(np.diag(closed), 4))
print("relative Frobenius error:", np.linalg.norm(learned - closed) / np.linalg.norm(closed))

# %% [markdown]
# ## Newton-Schulz converges quadratically, GD linearly
# The residual of every eigen-direction squares at each Newton step; GD's shrinks by a constant factor.

# %%
rng = np.random.default_rng(0)
xs = rng.standard_normal((40, 20)) * np.sqrt(np.logspace(0, 2, 20))
gram = xs.T @ xs
steps = np.arange(0, 25)
fig = go.Figure()
fig.add_scatter(x=steps, y=[newton.residual_bound(gram, int(k)) for k in steps], name="Newton-Schulz, max |1 - s m_k|")
evals = np.linalg.eigvalsh(gram)
fig.add_scatter(x=steps, y=(1 - evals.min() / evals.max()) ** steps, name="GD (step 1/s_max)")
fig.update_layout(yaxis_type="log", xaxis_title="iteration", yaxis_title="residual", template="plotly_white",
                  title=f"κ = 100: Newton needs {newton.newton_steps_to(gram, 0.01)} steps to 1%, GD {newton.gd_steps_to(gram, 0.01)}")
fig.show()

# %% [markdown]
# ## dMMSE tends to ridge as the task pool grows
# A pool drawn from the Gaussian prior is an importance sample of the Gaussian posterior.

# %%
x = rng.standard_normal((4, 4))
y = x @ rng.standard_normal(4) + 0.5 * rng.standard_normal(4)
mu, cov = bayes.gaussian_posterior(x, y, 0.5)
sizes = [2**k for k in range(2, 15, 2)]
gap = [np.mean([np.sum((bayes.dmmse_mean(rng.standard_normal((m, 4)), x, y, 0.5) - mu) ** 2) for _ in range(10)])
       / np.trace(cov) for m in sizes]
go.Figure(go.Scatter(x=sizes, y=gap, mode="lines+markers")).update_layout(
    xaxis_type="log", yaxis_type="log", xaxis_title="pool size M", template="plotly_white",
    yaxis_title="|w_dMMSE - w_ridge|² / tr Σ_post").show()

# %% [markdown]
# ## Garg et al.'s baselines per function class
# The estimators that `wb run icl-function-classes` sets beside its trained models, here alone: error / E[y²]
# against the number of in-context examples k on the five function classes of its default preset. On
# noiseless linear prompts min-norm least squares follows (d − k)/d and is exact from k = d; Lasso uses the
# sparsity below k = d; nothing linear helps much on trees. The trained models' curves are on the report page.

# %%
import jax

from workbench.experiments import icl_function_classes as fc
from workbench.experiments._task_group import sample_batch

fc_config = make_config(fc.EXPERIMENT, "default", [])
fig = go.Figure()
for i, (name, task) in enumerate(fc.make_tasks(fc_config).items()):
    batch = sample_batch(task, jax.random.key(i), 512)
    for base, predictor in fc.baselines(fc_config, name).items():
        err = np.mean((np.asarray(fc.prefix_batch(predictor, batch.xs, batch.ys)) - np.asarray(batch.ys)) ** 2, 0)
        fig.add_scatter(y=err / fc.y_scale(fc_config)[name], name=f"{name}: {base}",
                        visible=True if i == 0 else "legendonly")
fig.update_layout(xaxis_title="in-context examples k", yaxis_title="error / E[y²]", template="plotly_white",
                  title="Baselines per function class (click the legend to show the other classes)")
fig.show()
