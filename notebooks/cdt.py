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
# # CD-T: contextual decomposition for transformers
#
# CD-T (Hsu et al. 2025) splits every activation into **beta**, the part due to chosen **sources**
# (input positions, heads, MLPs), and **gamma**, the rest, with beta + gamma equal to the activation
# at every hook. One decomposed pass per source gives its contribution to the output;
# `cdt.contributions` runs a whole grid of sources as one vmapped program. This notebook uses it on a
# compiled RASP program, whose ground-truth circuit is known, and on a small linear-attention model
# whose exact attribution is known (two of the `cdt-attribution` experiment's models). See `docs/cdt.md`.

# %%
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go

from workbench.experiments import _cdt_models as models
from workbench.interp import L1, Named, Output, cdt, site_set
from workbench.models import Site, run_with_cache, sites

# %% [markdown]
# ## A compiled RASP program: `hist`
# `hist` counts, at each position, how many tokens equal this one: one attention head (`a0.h0`) and
# one MLP (`m0`). Each node (a head's `z` or an MLP's output at every position) is a source; its
# score is the size (`L1`) of its beta-output, mean over prompts.

# %%
program, inputs = models.rasp_program("hist")
xs = jnp.stack([program.encode(list(v)) for v in inputs[:16]])
scores = cdt.node_scores(program.model, xs, L1())
truth = {n.name for n in program.circuit.nodes if n.kind in ("attn", "mlp")}
for node, score in sorted(scores.items(), key=lambda t: -abs(t[1])):
    print(f"{node.name:6s} {score:9.4f}  {'ground truth' if node.name in truth else ''}")

# %% [markdown]
# ## The discovered circuit
# `discover` keeps the nodes of largest score for the output, then scores the earlier nodes against
# the inputs (q/k/v, MLP input) of the nodes kept, for a few rounds (the authors' iteration).

# %%
found = cdt.discover(program.model, xs, L1())
print("found:       ", sorted(e.name for e in found.edges))
print("ground truth:", sorted(e.name for e in program.circuit.edges))

# %% [markdown]
# ## The invariants
# With any source set, beta + gamma is the activation at every hook; with every input as the source,
# gamma is 0; with no source, beta is 0.

# %%
x = xs[0]
names = [n for n in sites.hook_names(program.model.config)
         if not n.endswith(("hook_result", "hook_attn_scores", "hook_pattern", "hook_scale", "embed"))]
out, cache = run_with_cache(program.model, x, names)
cache = {**cache, "logits": out}
config = program.model.config
rel = lambda a, b: float(jnp.abs(a - b).max() / jnp.maximum(jnp.abs(b).max(), 1e-30))
for label, members in (("head a0.h0 at position 1", [Site(0, "z", head=0, position=1)]),
                       ("every input", [Site(0, "resid_pre")]), ("no source", [])):
    d = cdt.decompose(program.model, x, site_set(config, x.shape[0], members), record=names)
    worst = max(rel(d.beta[n] + d.gamma[n], cache[n]) for n in d.beta)
    print(f"{label:26s} max rel |beta + gamma - activation| = {worst:.1e}   "
          f"max |beta| = {max(float(jnp.abs(b).max()) for b in d.beta.values()):.3g}   "
          f"max |gamma| = {max(float(jnp.abs(g).max()) for g in d.gamma.values()):.3g}")

# %% [markdown]
# ## A small model with a known answer: the icl-gd linear self-attention layer
# One layer of linear self-attention at the construction of von Oswald et al. (one gradient-descent
# step with learning rate eta on the in-context points), as a vector-input `Transformer`. Each input
# position is a source; with the attention pattern held (`fixed=True`, the BERT rule) CD-T of a linear
# model is the exact additive attribution, so context point i must contribute GD's term
# `eta / n * y_i * x_i . x_q` to the prediction.

# %%
d, n = 4, 8
prompts, eta = models.lsa_prompts(d, n, jax.random.key(0), 4)
lsa = models.lsa_transformer(d, n, eta)
grid = cdt.input_sources(lsa.config, n + 1)
per_point = np.stack([np.asarray(cdt.contributions(lsa, p[None], grid, Output(index=0), fixed=True, cleanup=False)
                                 .scores.values)[:-1] for p in prompts])  # [prompt, context point]
terms = np.asarray(models.gd_terms(prompts, eta))
print("CD-T   ", np.round(per_point[0], 5))
print("GD term", np.round(terms[0], 5))
print(f"max relative difference over {len(prompts)} prompts: {np.abs(per_point - terms).max() / np.abs(terms).max():.1e}")
go.Figure(cdt.heatmap(Named(per_point, ("prompt", "point"), (tuple(range(len(prompts))), tuple(range(n)))),
                      rows="prompt", cols="point", title="CD-T contribution of each context point")).show()
