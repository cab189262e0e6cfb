"""CD-T: the full source (layer, head, position) -> logit matrix against path patching of the same nodes.

The model is the issue's shape: two attention-only layers with 8 heads (d_model 64, d_head 8,
LayerNorm, learned positions) on 64 prompts of 32 tokens over 16 symbols, freshly initialised (the
cost does not depend on the weights). The metric is the logit difference between two tokens at the
last position; corrupted prompts are other random prompts. Sources / senders: every head output `z`
at every layer, head and position, 2 x 8 x 32 = 512 nodes.

- `cdt`: `workbench.interp.cdt.contributions` on the whole grid with beta the deviation from the mean
  over the corrupted prompts; one jitted program per source layer, sources vmapped (`CDT_CHUNK` at a
  time), from the clean cache.
- `path_patching`: `workbench.interp.path_patching` of the same senders into the final residual
  stream (the direct path to the logits), one jitted program, sites vmapped (`CHUNK` at a time).

Both are warmed up (compiled) first and timed `REPEATS` times, alternating; medians. The ratio
`path_patching_over_cdt` is path patching time / CD-T time (goal >= 20); `results` also has the
Spearman rank correlation of the two score maps (CD-T contribution vs minus the path-patching effect).
`WB_BENCH_CHUNK` / `WB_BENCH_CDT_CHUNK` set the blocks (0: all sites in one vmap).
"""

import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from workbench.interp import LogitDiff, cdt, path_patching, site_grid, site_set
from workbench.models import Site, Transformer, TransformerConfig

PROMPTS, SEQ, VOCAB, REPEATS = 64, 32, 16, 3
CPU = jax.default_backend() == "cpu"
CHUNK = int(os.environ.get("WB_BENCH_CHUNK", "1" if CPU else "0")) or None
CDT_CHUNK = int(os.environ.get("WB_BENCH_CDT_CHUNK", "16" if CPU else "0")) or None
CONFIG = TransformerConfig(n_layers=2, d_model=64, n_heads=8, d_head=8, n_ctx=SEQ, d_vocab=VOCAB, attn_only=True)


def _prompts():
    clean = jax.random.randint(jax.random.key(1), (PROMPTS, SEQ), 0, VOCAB)
    corrupted = jax.random.randint(jax.random.key(2), (PROMPTS, SEQ), 0, VOCAB)
    metric = LogitDiff(correct=jnp.zeros(PROMPTS, jnp.int32), wrong=jnp.ones(PROMPTS, jnp.int32))
    return clean, corrupted, metric


def _cdt(model, clean, corrupted, metric, grid) -> np.ndarray:
    reference = cdt.mean_reference(model, corrupted, grid)
    return np.asarray(cdt.contributions(model, clean, grid, metric, reference=reference, chunk=CDT_CHUNK).scores.values)


def _path(model, clean, corrupted, metric, grid) -> np.ndarray:
    receivers = site_set(CONFIG, SEQ, [Site(CONFIG.n_layers - 1, "resid_post")])
    return np.asarray(path_patching(model, clean, corrupted, metric, grid, receivers, chunk=CHUNK).effect.values)


def run() -> dict:
    model = Transformer(CONFIG, key=jax.random.key(0))
    clean, corrupted, metric = _prompts()
    grid = site_grid(CONFIG, "z", SEQ)
    args = (model, clean, corrupted, metric, grid)
    scores, effect = _cdt(*args), _path(*args)  # warm-up (compiles)
    times = {"cdt": [], "path_patching": []}
    for _ in range(REPEATS):
        for name, fn in (("cdt", _cdt), ("path_patching", _path)):
            t = time.perf_counter()
            fn(*args)
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    result = {"sources": int(scores.size), "prompts": PROMPTS, "seq": SEQ, "chunk": CHUNK, "cdt_chunk": CDT_CHUNK,
              "seconds": median, "spearman": cdt.rank_correlation(scores, -effect),
              "spearman_last_layer": cdt.rank_correlation(scores[-1], -effect[-1])}
    machine = dict(platform=platform.platform(), backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
                   jax=jax.__version__, cpu_count=os.cpu_count(), load_average=os.getloadavg())
    return {"benchmark": "cdt", "machine": machine, "results": [result],
            "ratios": {"path_patching_over_cdt": median["path_patching"] / median["cdt"]}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
