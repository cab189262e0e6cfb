# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A workbench model in TransformerLens
#
# We train a 2-layer attention-only transformer on an induction task in the workbench (JAX),
# open it in TransformerLens 4.x with `workbench.lens.to_transformer_lens`, and take it apart
# with TransformerLens' own tools: `run_with_cache`, head detection, attention patterns,
# composition scores, direct logit attribution and `run_with_hooks` ablations. Every number is
# also computed in the workbench, and the two agree.
#
# The task: each sequence repeats a random block of `period` distinct tokens (`period` varies
# between 3 and 9), so predicting the next token needs *induction* (find the previous occurrence of
# the current token, copy what followed it), not a fixed positional offset.

# %%
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import plotly.express as px
import torch
from transformer_lens.head_detector import (
    compute_head_attention_similarity_score,
    get_induction_head_detection_pattern,
    get_previous_token_head_detection_pattern,
)

from workbench import lens
from workbench.models import Transformer, TransformerConfig, run_with_hooks, sites

start = time.perf_counter()
VOCAB, SEQ, STEPS, BATCH = 32, 24, 500, 64
config = TransformerConfig(
    n_layers=2, d_model=64, n_heads=2, d_head=32, n_ctx=SEQ, d_vocab=VOCAB, attn_only=True, normalization_type=None
)


def sample(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One sequence `[SEQ]` repeating `period` distinct tokens, and which next tokens are determined."""
    k_period, k_tokens = jax.random.split(key)
    period = jax.random.randint(k_period, (), 3, 10)
    pos = jnp.arange(SEQ)
    return jax.random.permutation(k_tokens, VOCAB)[pos % period], pos >= period - 1


def loss_fn(model: Transformer, key: jax.Array) -> jax.Array:
    """Mean next-token loss over the positions whose next token is determined by the prefix."""
    tokens, known = jax.vmap(sample)(jax.random.split(key, BATCH))
    logp = jax.nn.log_softmax(model.batched(tokens[:, :-1]), -1)
    nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0]
    return (nll * known[:, :-1]).sum() / known[:, :-1].sum()


# %% [markdown]
# ## 1. Train in the workbench

# %%
optimizer = optax.adam(1e-2)
model = Transformer(config, key=jax.random.key(0))
opt_state = optimizer.init(eqx.filter(model, eqx.is_array))


@eqx.filter_jit
def step(model, opt_state, key):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model, key)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss


data_key = jax.random.key(1)
losses = []
for t in range(STEPS):
    model, opt_state, loss = step(model, opt_state, jax.random.fold_in(data_key, t))
    losses.append(float(loss))
eval_loss = float(eqx.filter_jit(loss_fn)(model, jax.random.key(2)))
print(f"loss: step 0 {losses[0]:.3f}, final eval {eval_loss:.3f} (chance {np.log(VOCAB):.3f})")
px.line(y=losses, labels={"index": "step", "y": "train loss"}, title="Training loss")

# %% [markdown]
# ## 2. Open it in TransformerLens
#
# `to_transformer_lens` builds a `TransformerBridge.boot_native` model and loads the weights through
# `convert_tl_checkpoint` (no hub access). `compare_caches` runs both models and reports the error
# at every shared hook (`hook_attn_scores` means the pattern in TL 4.3; see the note).

# %%
bridge = lens.to_transformer_lens(model)
tokens_jax, known = sample(jax.random.key(3))
report = lens.compare_caches(model, bridge, tokens_jax)
print(report)
assert report.max_rel < 1e-5

# %% [markdown]
# ## 3. TransformerLens' own tools on the exported model

# %%
tokens = lens.tl_input(model, tokens_jax)  # int64 [1, seq]
with torch.no_grad():
    logits, cache = bridge.run_with_cache(tokens)
correct = (logits[0, :-1].argmax(-1) == tokens[0, 1:]).numpy()[np.asarray(known[:-1])]
print(f"accuracy on the determined positions (TransformerLens logits): {correct.mean():.2f}")

induction = get_induction_head_detection_pattern(tokens.cpu())
previous = get_previous_token_head_detection_pattern(tokens.cpu())
scores = {}
for layer in range(config.n_layers):
    for head in range(config.n_heads):
        pattern = cache["pattern", layer][0, head]  # ActivationCache indexing
        scores[(layer, head)] = {
            name: compute_head_attention_similarity_score(
                pattern, detection, exclude_bos=False, exclude_current_token=False, error_measure="mul"
            )
            for name, detection in (("previous token", previous), ("induction", induction))
        }
for (layer, head), s in scores.items():
    print(f"L{layer}H{head}: previous-token {s['previous token']:.2f}, induction {s['induction']:.2f}")
top_induction = max(scores, key=lambda lh: scores[lh]["induction"])
top_previous = max(scores, key=lambda lh: scores[lh]["previous token"])
print("induction head:", top_induction, " previous-token head:", top_previous)

# %%
patterns = np.stack([cache["pattern", layer][0].numpy() for layer in range(config.n_layers)])
px.imshow(
    patterns.reshape(-1, SEQ, SEQ),
    facet_col=0,
    facet_col_wrap=config.n_heads,
    labels={"x": "key position", "y": "query position"},
    title="Attention patterns from the TransformerLens cache (L0H0, L0H1, L1H0, L1H1)",
    color_continuous_scale="Blues",
)

# %% [markdown]
# K-composition between the layer-0 heads and the layer-1 heads (TransformerLens'
# `all_composition_scores`), and direct logit attribution of each residual component
# (`ActivationCache.decompose_resid` + `logit_attrs`).

# %%
k_comp = bridge.all_composition_scores("K")
print("K-composition scores [L0 head, L1 head]:\n", np.round(k_comp[0, :, 1, :].detach().numpy(), 3))
with torch.no_grad():
    components, labels = cache.decompose_resid(return_labels=True, apply_ln=True)
    # logit of the correct next token, per component: [component, batch, pos - 1]
    attrs = cache.logit_attrs(components[:, :, :-1], tokens=tokens[:, 1:])
mean_attrs = attrs[:, 0].numpy()[:, np.asarray(known[:-1])].mean(-1)
print("direct logit attribution to the correct next token:")
print({label: round(float(a), 2) for label, a in zip(labels, mean_attrs)})

# %% [markdown]
# ## 4. Ablate the induction head, in both libraries
#
# Zero the induction head's output (`hook_z`) with `bridge.run_with_hooks`, and with the workbench's
# `run_with_hooks`: the loss on determined positions rises, and both give the same logits.

# %%
layer, head = top_induction


def tl_ablate(z, hook):
    z[:, :, head] = 0.0
    return z


with torch.no_grad():
    tl_ablated = bridge.run_with_hooks(tokens, fwd_hooks=[(sites.attn(layer, "z"), tl_ablate)])
wb_ablated = run_with_hooks(model, tokens_jax, {sites.attn(layer, "z"): lambda z, name: z.at[:, head].set(0.0)})


def determined_loss(logits: np.ndarray) -> float:
    logp = jax.nn.log_softmax(jnp.asarray(logits[:-1]), -1)
    nll = -jnp.take_along_axis(logp, tokens_jax[1:, None], -1)[:, 0]
    return float(nll[known[:-1]].mean())


clean, tl_loss, wb_loss = (determined_loss(v) for v in (logits[0].numpy(), tl_ablated[0].numpy(), wb_ablated))
print(f"loss: clean {clean:.3f}, L{layer}H{head} ablated {tl_loss:.3f} (TransformerLens), {wb_loss:.3f} (workbench)")
print("max |TL - workbench| ablated logits:", float(np.abs(tl_ablated[0].numpy() - np.asarray(wb_ablated)).max()))

# %% [markdown]
# ## 5. And back
#
# A bridge (or a TransformerLens state dict, legacy or 4.x format) loads into the workbench;
# the round trip is bit-exact.

# %%
back = lens.from_transformer_lens(bridge, config)
same = all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(back)))
print("round trip exact:", same)
assert same
print(f"notebook ran in {time.perf_counter() - start:.1f} s")
