"""Taking the trained markov-icl model apart: attention scores, head ablations, activation and
attribution patching of every head at every position, and path patching from layer 0 into the
queries, keys and values of layer 1.

Clean prompts are chains of one table each; corrupted prompts are other chains (other tables).
The metric is the clean next-token loss, so an effect is the rise in loss a site causes.
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from workbench.interp import (
    Loss,
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


def analyse_model(model: Transformer, clean: Int[Array, "batch seq"], corrupted: Int[Array, "batch seq"]) -> dict:
    """Everything the page shows about the mechanism, as JSON-ready numbers."""
    c, seq = model.config, clean.shape[1]
    metric = Loss(targets=next_token_targets(clean))
    z = site_grid(c, "z", seq)
    act = activation_patching(model, clean, corrupted, metric, z)
    attr = attribution_patching(model, clean, corrupted, metric, z)
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
        "clean_loss": float(act.clean), "corrupted_loss": float(act.corrupted),
        "activation": act_effect.tolist(), "attribution": attr_effect.tolist(),
        "head_ablation": np.asarray(heads.effect.values).tolist(), "scores": scores,
        "prev_token_l0": float(max(scores["prev_token"][0])), "induction_l1": float(max(scores["induction"][1])),
        "prev_head": prev_head, "paths": paths, "key_path_share": paths["k"] / total if total > 0 else float("nan"),
        "attribution_spearman": spearman(attr_effect.ravel(), act_effect.ravel()),
        "sign_agreement": float(np.mean(np.sign(attr_effect) == np.sign(act_effect))),
    }
