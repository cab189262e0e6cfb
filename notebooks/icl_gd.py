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
# # In-context learning is gradient descent
#
# von Oswald et al. (2023) show that one linear self-attention (LSA) layer trained on in-context
# linear regression implements one step of gradient descent. This notebook trains the layer (the
# `quick` preset of `wb run icl-gd`), reads the checks, and opens the trained weights to compare them
# with the paper's construction. Set `WB_PRESET=default` for the 5-seed numbers of the report.

# %%
import os
from pathlib import Path

import jax
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from workbench.experiments import icl_gd
from workbench.run.runner import group_dir, run_experiment
from workbench.tasks.predictors import gd
from workbench.tasks.regression import best_gd_eta, predict_batch
from workbench.theory import lsa_gd

RUNS = Path(os.environ.get("WB_RUNS", "../runs"))
PRESET = os.environ.get("WB_PRESET", "quick")
SEEDS = [0]

# %% [markdown]
# ## Train (or reuse finished runs)
# Runs live in `runs/icl-gd/<config-hash>-vmap/seed-<s>/` (seeds vmapped, as `make report` trains
# them); a finished seed is not trained again.

# %%
summary = run_experiment("icl-gd", preset=PRESET, seeds=SEEDS, out=RUNS, vmap=True)
for c in summary.checks:
    print(f"{c.name:26s} paper {c.check.paper:.4g}  ours {c.check.ours:.4g}  tol {c.check.tolerance:.3g}  "
          f"{'pass' if c.passed else 'MISS'}")

# %% [markdown]
# ## The figures of the report page

# %%
group = group_dir(RUNS, "icl-gd", summary.config_hash, vmap=True)
for name in summary.figures:
    pio.from_json((group / "figures" / f"{name}.json").read_text()).show()

# %% [markdown]
# ## Open the trained layer
# Only the products $P W_V$ and $W_K^T W_Q$ matter (the scale symmetry). Their combination, the
# bilinear form $T$, should equal the construction's: $T_{y,b,c} = (\eta/N)\,\delta_{bc}$ on the
# x-block (symmetrised), zero elsewhere.

# %%
config = icl_gd.EXPERIMENT.presets[PRESET]
model = icl_gd.load_model(config, group / "seed-0")
task = icl_gd.make_task(config)
batch = task.sample(jax.random.key(123), 2048)
eta = best_gd_eta(batch)
print(f"line-searched eta* = {eta:.3f}, effective eta of the layer = {lsa_gd.effective_eta(model, config.n_points):.3f}")
print(f"distance to the construction: {lsa_gd.construction_distance(model, config.n_points, eta):.3f}")

T = np.asarray(lsa_gd.bilinear_form(model))
fig = go.Figure(go.Heatmap(z=T[config.d], colorscale="RdBu", zmid=0))
fig.update_layout(title="Learned T[y, b, c]: rows b (token coordinate), columns c (query coordinate)",
                  xaxis_title="c", yaxis_title="b", width=520, height=480)
fig.show()

# %% [markdown]
# ## Predictions against one GD step, and the symbolic derivation

# %%
pred = icl_gd.lsa_predictions(model, batch)
pred_gd = predict_batch(gd(eta), batch)
print("prediction cosine:", float(np.dot(pred, pred_gd) / np.linalg.norm(pred) / np.linalg.norm(pred_gd)))
print("Prop. 1 holds symbolically for d=2, N=3:", lsa_gd.construction_equals_gd(2, 3))
