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
# # Circuit discovery on a compiled program
#
# `workbench.interp.circuits` runs ACDC, edge attribution patching, edge path patching and CD-T on
# the same model, ablation and metric, over the edges of `Circuit.complete(config)`, and scores them
# against a known circuit. Here: the compiled `frac_prevs` program, whose ground truth the RASP
# compiler writes, with zero ablation and the L2 distance to the clean output. See `docs/circuits.md`.

# %%
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go

from workbench.interp import MSE
from workbench.interp import circuits as C
from workbench.models import circuit_figure
from workbench.rasp import compile_program
from workbench.rasp import library as lib
from workbench.rasp.compiler import all_inputs

entry = lib.entry("frac_prevs")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    program = compile_program(entry.program(entry.max_seq_len), entry.vocab, entry.max_seq_len)
n = entry.max_seq_len
inputs = list(all_inputs(entry.vocab, n, min_len=1))
pick = np.random.default_rng(0).choice(len(inputs), 32, replace=False)
xs = jnp.stack([program.encode(list(inputs[i]), pad_to=n) for i in pick])
keep = jnp.stack([(jnp.arange(n + 1) >= 1) & (jnp.arange(n + 1) <= len(inputs[i])) for i in pick])
task = C.circuit_task(program.model, xs, MSE(keep=keep), "zero")
print(task.layout.n_edges, "candidate edges;", len(program.circuit.edges), "in the compiled circuit")

# %% [markdown]
# Each method returns a `Discovery` (every edge scored, wall time). ACDC runs at every threshold of
# its sweep in one vmapped scan; its ROC points are those runs.

# %%
found = {"acdc": C.acdc(task), "eap_ig": C.eap(task, ig_steps=4), "path_patching": C.path_patching(task)}
for name, d in found.items():
    print(f"{name:14s} edge AUC {C.edge_roc(d, program.circuit).auc:.3f}  {d.seconds:.2f} s (compile included)")

# %%
fig = go.Figure()
for name, d in found.items():
    roc = C.edge_roc(d, program.circuit)
    fig.add_scatter(x=roc.fpr, y=roc.tpr, mode="lines+markers", name=name)
fig.update_layout(title="frac_prevs: edge ROC against the compiled circuit", xaxis_title="FPR", yaxis_title="TPR")
fig

# %% [markdown]
# Faithfulness `(m(C) - m(empty)) / (m(M) - m(empty))` of the circuit ACDC keeps at 1e-3, under
# zero ablation and (the same circuit) under resample ablation, and the circuit next to the truth.

# %%
circuit = found["acdc"].circuit_at(1e-3)
resampled = C.circuit_task(program.model, xs, MSE(keep=keep), "resample", corrupted=jnp.roll(xs, 1, 0))
print("faithfulness (zero, resample):", float(C.faithfulness(task, circuit)[0]),
      float(C.faithfulness(resampled, circuit)[0]))
go.Figure(circuit_figure(circuit, "ACDC at 1e-3"))

# %%
go.Figure(circuit_figure(program.circuit, "the compiled circuit"))
