"""Taking the trained markov-icl model apart: attention scores, head ablations, activation and
attribution patching of every head at every position, and path patching from layer 0 into the
queries, keys and values of layer 1.

Clean prompts are chains of one table each; corrupted prompts are other chains (other tables).
Head ablations and path patching measure the clean next-token loss (an effect is the rise in loss).
Activation and attribution patching over head x position sites measure the logit difference of the
clean run's prediction (its top token minus its runner-up, mean over positions): the trained model is
close to the Bayes predictor, whose expected loss gradient is zero, so a first-order estimate of the
loss sees only noise, while the logit difference has a gradient that points somewhere.
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from workbench.interp import (
    Loss,
    MeanLogitDiff,
    ablation,
    activation_patching,
    attribution_patching,
    path_patching,
    site_grid,
    site_set,
)
from workbench.models import Site, Transformer

from ._progress import attention_scores, next_token_targets


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks `0..n-1`, ties sharing their mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two flat arrays (Pearson correlation of their ranks)."""
    return float(np.corrcoef(rank(np.asarray(a, float)), rank(np.asarray(b, float)))[0, 1])


def _scores(model: Transformer, tokens: Int[Array, "batch seq"]) -> dict[str, list[list[float]]]:
    c = model.config
    flat = {k: float(v) for k, v in attention_scores(model, tokens).items()}
    return {score: [[flat[f"{score}.a{l}.h{h}"] for h in range(c.n_heads)] for l in range(c.n_layers)]
            for score in ("prev_token", "induction", "sink")}


def prediction_margin(model: Transformer, clean: Int[Array, "batch seq"]) -> MeanLogitDiff:
    """Logit of the clean run's top token minus its runner-up's, at every position."""
    top2 = jnp.argsort(model.batched(clean), -1)[..., ::-1][..., :2]
    return MeanLogitDiff(correct=top2[..., 0], wrong=top2[..., 1])


def analyse_model(model: Transformer, clean: Int[Array, "batch seq"], corrupted: Int[Array, "batch seq"],
                  ig_steps: int) -> dict:
    """Everything the page shows about the mechanism, as JSON-ready numbers."""
    c, seq = model.config, clean.shape[1]
    metric = Loss(targets=next_token_targets(clean))
    margin = prediction_margin(model, clean)
    z = site_grid(c, "z", seq)
    act = activation_patching(model, clean, corrupted, margin, z)
    attr = attribution_patching(model, clean, corrupted, margin, z, ig_steps=ig_steps)
    plain = np.asarray(attribution_patching(model, clean, corrupted, margin, z).effect.values)
    heads = ablation(model, clean, metric, site_grid(c, "z", seq, by_pos=False), "mean")
    scores = _scores(model, clean)
    prev_head = int(np.argmax(scores["prev_token"][0]))
    senders = site_grid(c, "z", seq, layers=(0,), by_pos=False)
    # The same receiver hooks each time (zero masks but one), so path patching compiles once.
    empty = {n: jnp.zeros_like(m) for n, m in site_set(c, seq, [Site(1, k) for k in ("q", "k", "v")]).items()}
    paths = {}
    for component in ("q", "k", "v"):
        receivers = {**empty, **site_set(c, seq, [Site(1, component)])}
        result = path_patching(model, clean, corrupted, metric, senders, receivers)
        paths[component] = float(result.effect.values[0, prev_head])
    total = sum(abs(v) for v in paths.values())
    act_effect, attr_effect = np.asarray(act.effect.values), np.asarray(attr.effect.values)
    return {
        "clean_margin": float(act.clean), "corrupted_margin": float(act.corrupted), "ig_steps": ig_steps,
        "activation": act_effect.tolist(), "attribution": attr_effect.tolist(),
        "head_ablation": np.asarray(heads.effect.values).tolist(), "scores": scores,
        "prev_token_l0": float(max(scores["prev_token"][0])), "induction_l1": float(max(scores["induction"][1])),
        "prev_head": prev_head, "paths": paths, "key_path_share": paths["k"] / total if total > 0 else float("nan"),
        "attribution_spearman": spearman(attr_effect.ravel(), act_effect.ravel()),
        "attribution_spearman_by_layer": [spearman(a, b) for a, b in zip(attr_effect.reshape(c.n_layers, -1),
                                                                         act_effect.reshape(c.n_layers, -1))],
        "clean_gradient_spearman": spearman(plain.ravel(), act_effect.ravel()),
        "sign_agreement": float(np.mean(np.sign(attr_effect) == np.sign(act_effect))),
    }
