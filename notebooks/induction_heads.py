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
# # Induction in the making: the statistical induction head
#
# Edelman et al. (2024) train a two-layer attention-only transformer on in-context Markov chains
# (every sequence has its own transition matrix). The loss falls from the uniform predictor to a
# plateau at the in-context unigram estimator, then abruptly to the bigram estimator, when a
# previous-token head (layer 0) and an induction head (layer 1) form. This notebook trains the
# model (`wb run markov-icl`, the `quick` preset; `WB_PRESET=default` for the report's scale),
# watches the phase change through progress measures logged at every eval step, patches the
# induction head, and repeats the ablation in TransformerLens.

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import plotly.io as pio
import torch

from workbench import lens
from workbench.experiments import markov_icl
from workbench.experiments._base import SeedRun
from workbench.experiments._progress import next_token_targets
from workbench.interp import Loss, ablation, activation_patching, pos_layer_heatmap, site_grid
from workbench.models import run_with_cache, run_with_hooks, sites
from workbench.run.runner import group_dir, make_config, run_experiment

RUNS = Path(os.environ.get("WB_RUNS", "../runs"))
PRESET = os.environ.get("WB_PRESET", "quick")
OVERRIDES = os.environ.get("WB_SET", "").split()  # `key=value` config overrides, as `wb run --set`
SEEDS = [0]

# %% [markdown]
# ## 1. Train (or reuse a finished run) and read the checks
# Runs live in `runs/markov-icl/<config-hash>-vmap/seed-<s>/` (seeds vmapped, as `make report`
# trains them); a finished seed is not trained again.

# %%
summary = run_experiment("markov-icl", preset=PRESET, seeds=SEEDS, overrides=OVERRIDES, out=RUNS, vmap=True)
for c in summary.checks:
    print(f"{c.name:30s} paper {c.check.paper:.4g}  ours {c.check.ours:.4g}  tol {c.check.tolerance:.3g}  "
          f"{'pass' if c.passed else 'MISS'}")

# %% [markdown]
# ## 2. Watch the phase change
# The eval loss against the three estimators, and below it the progress measures logged at each
# eval step (previous-token score of `a0.h0`, induction score and sink mass of `a1.h0`, and the
# rise in loss when `a1.h0` is mean-ablated). The dotted line is the transition step: the steepest
# drop of the smoothed loss below the unigram loss.

# %%
group = group_dir(RUNS, "markov-icl", summary.config_hash, vmap=True)
pio.from_json((group / "figures" / "progress.json").read_text()).show()
run = SeedRun(SEEDS[0], group / f"seed-{SEEDS[0]}")
print("phases:", run.read_json("extras")["phases"])

# %% [markdown]
# ## 3. Patch the induction head
# Clean prompts are chains of one table; corrupted prompts are chains of other tables. Patching
# each head's output at each position from the corrupted run raises the clean next-token loss;
# mean-ablating the whole layer-1 head removes the in-context bigram statistics.

# %%
config = make_config(markov_icl.EXPERIMENT, PRESET, OVERRIDES)
model = markov_icl.load_model(config, run.dir)
task = markov_icl.make_task(config)
clean, corrupted = (task.sample(k, 64).tokens for k in jax.random.split(jax.random.key(123)))
metric = Loss(targets=next_token_targets(clean))
patched = activation_patching(model, clean, corrupted, metric, site_grid(model.config, "z", config.seq_len))
pio.show(pos_layer_heatmap(patched.effect.sum("head"), "Δ loss, each head output patched from another chain"))
heads = ablation(model, clean, metric, site_grid(model.config, "z", config.seq_len, by_pos=False), "mean")
print(f"clean loss {float(heads.clean):.4f}; mean-ablation Δ loss per head [layer, head]:",
      np.round(np.asarray(heads.effect.values), 4).tolist())

# %% [markdown]
# ## 4. The same ablation in TransformerLens
# Export the trained model with `workbench.lens.to_transformer_lens`, mean-ablate `a1.h0` with a
# `hook_z` hook in `bridge.run_with_hooks`, and compare with the workbench on the same prompts.

# %%
bridge = lens.to_transformer_lens(model)
layer, head = markov_icl.HEAD
z_name = sites.attn(layer, "z")
_, cache = jax.vmap(lambda x: run_with_cache(model, x, [z_name]))(clean)
z_mean = np.asarray(cache[z_name].mean(0))  # [seq, head, d_head]: the mean over prompts


def tl_mean_ablate(z, hook):
    z[:, :, head] = torch.from_numpy(z_mean[:, head])
    return z


def mean_loss(logits: np.ndarray) -> float:
    logp = jax.nn.log_softmax(jnp.asarray(logits[:, :-1]), -1)
    return float(-jnp.take_along_axis(logp, clean[:, 1:, None], -1).mean())


tokens = torch.from_numpy(np.asarray(clean, np.int64))
with torch.no_grad():
    tl_clean = bridge(tokens).numpy()
    tl_ablated = bridge.run_with_hooks(tokens, fwd_hooks=[(z_name, tl_mean_ablate)]).numpy()
wb_ablated = np.asarray(jax.vmap(lambda x: run_with_hooks(
    model, x, {z_name: lambda z, name: z.at[:, head].set(jnp.asarray(z_mean[:, head]))}))(clean))
print(f"loss: clean {mean_loss(tl_clean):.4f} (TransformerLens); a{layer}.h{head} mean-ablated "
      f"{mean_loss(tl_ablated):.4f} (TransformerLens), {mean_loss(wb_ablated):.4f} (workbench), "
      f"{float(heads.patched.values[layer, head]):.4f} (workbench `ablation`)")
print("max |TL - workbench| ablated logits:", float(np.abs(tl_ablated - wb_ablated).max()))
assert np.abs(tl_ablated - wb_ablated).max() < 1e-4
