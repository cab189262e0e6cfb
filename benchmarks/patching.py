"""Activation patching: the full layer x head x position matrix of the markov-icl model in one vmapped call
against a loop.

The model is the `markov-icl` experiment's (Edelman et al. 2024, `wb run markov-icl --preset default`):
two attention-only layers, d_model 16, one head, on in-context Markov chains of 2 symbols and 100
tokens. The trained seed-0 checkpoint of that run is used when it exists under `$WB_RUNS` (default
`runs/`); otherwise the same architecture freshly initialised (the cost does not depend on the
weights; `results[0]["weights"]` says which). 64 clean prompts are paired with 64 corrupted ones
(chains of other tables); the metric is the next-token loss. The sites are every head output (`z`)
at every layer, head and position: 2 x 1 x 100 = 200 sites, each a forward pass on all 64 prompts.

- `batched`: `workbench.interp.activation_patching` on the whole grid, one jitted program including
  the corrupted cache and both baselines. On a GPU all sites are vmapped at once; on CPU the sites
  run in blocks of `CHUNK = 1` inside the program (`jax.lax.map`): the 64 prompts already fill the
  cores, and wider site blocks only add memory traffic.
- `loop`: the corrupted cache and the clean run once, then one call per site of a jitted
  `run_with_hooks` on the 64 prompts (head and position are array arguments, so it compiles once
  per layer); the per-site metric is fetched, as a sweep would.

Both are warmed up first (compile excluded) and timed `REPEATS` times, alternating; medians.
`ratios["loop_over_batched"]` is loop time / batched time (goal >= 10). `WB_BENCH_CHUNK=N` sets the
block size (0: all sites in one vmap).
"""

import os
import platform
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from pathlib import Path

from workbench.core.config import config_hash
from workbench.experiments import markov_icl
from workbench.interp import Loss, activation_patching, site_grid
from workbench.models import Transformer, run_with_cache, run_with_hooks, sites
from workbench.run.runner import group_dir
from workbench.train import checkpoint

PROMPTS, REPEATS = 64, 5
CHUNK = int(os.environ.get("WB_BENCH_CHUNK", "1" if jax.default_backend() == "cpu" else "0")) or None
EXPERIMENT_CONFIG = markov_icl.EXPERIMENT.presets["default"]
CONFIG = markov_icl.model_config(EXPERIMENT_CONFIG)
SEQ = EXPERIMENT_CONFIG.seq_len


def _model() -> tuple[Transformer, str]:
    """The trained markov-icl model (seed 0 of the default preset) if its run exists, else a fresh one."""
    runs = Path(os.environ.get("WB_RUNS", "runs"))
    for vmap in (False, True):
        seed_dir = group_dir(runs, "markov-icl", config_hash(EXPERIMENT_CONFIG), vmap) / "seed-0"
        if checkpoint.steps(seed_dir):
            return markov_icl.load_model(EXPERIMENT_CONFIG, seed_dir), f"trained ({seed_dir.parent.name}/seed-0)"
    return Transformer(CONFIG, key=jax.random.key(0)), "fresh init (no finished markov-icl default run)"


def _prompts():
    task = markov_icl.make_task(EXPERIMENT_CONFIG)
    clean = task.sample(jax.random.key(1), PROMPTS).tokens
    corrupted = task.sample(jax.random.key(2), PROMPTS).tokens
    targets = jnp.concatenate([clean[:, 1:], jnp.full((PROMPTS, 1), -1, clean.dtype)], 1)
    return clean, corrupted, Loss(targets=targets)


@eqx.filter_jit
def _corrupted_cache(model, corrupted):
    names = tuple(sites.attn(l, "z") for l in range(CONFIG.n_layers))
    return jax.vmap(lambda x: run_with_cache(model, x, names))(corrupted)


@eqx.filter_jit
def _clean_out(model, clean):
    return jax.vmap(model)(clean)


@eqx.filter_jit
def _one_site(model, clean, clean_out, source, metric, layer, head, pos):
    """The mean metric with `z[pos, head]` of `layer` patched from `source [batch, seq, head, d_head]`."""

    def one(x, src, c, m):
        hook = {sites.attn(layer, "z"): lambda v, name: v.at[pos, head].set(src[pos, head])}
        return m(run_with_hooks(model, x, hook), c)

    return jax.vmap(one)(clean, source, clean_out, metric).mean()


def _loop(model, clean, corrupted, metric) -> np.ndarray:
    _, cache = _corrupted_cache(model, corrupted)
    clean_out = _clean_out(model, clean)
    values = np.zeros((CONFIG.n_layers, CONFIG.n_heads, SEQ), np.float32)
    for layer in range(CONFIG.n_layers):
        source = cache[sites.attn(layer, "z")]
        for head in range(CONFIG.n_heads):
            for pos in range(SEQ):
                values[layer, head, pos] = _one_site(model, clean, clean_out, source, metric, layer,
                                                     jnp.int32(head), jnp.int32(pos))
    return values


def _batched(model, clean, corrupted, metric) -> np.ndarray:
    grid = site_grid(CONFIG, "z", SEQ)
    return np.asarray(activation_patching(model, clean, corrupted, metric, grid, chunk=CHUNK).patched.values)


def run() -> dict:
    model, weights = _model()
    clean, corrupted, metric = _prompts()
    args = (model, clean, corrupted, metric)
    batched, looped = _batched(*args), _loop(*args)  # warm-up (compiles)
    times = {"batched": [], "loop": []}
    for _ in range(REPEATS):
        for name, fn in (("batched", _batched), ("loop", _loop)):
            t = time.perf_counter()
            fn(*args)
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    result = {"weights": weights, "sites": int(batched.size), "prompts": PROMPTS, "seq": SEQ, "chunk": CHUNK, "seconds": median,
              "max_abs_diff": float(np.abs(batched - looped).max())}
    machine = dict(platform=platform.platform(), backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
                   jax=jax.__version__, cpu_count=os.cpu_count(), load_average=os.getloadavg())
    return {"benchmark": "patching", "machine": machine, "results": [result],
            "ratios": {"loop_over_batched": median["loop"] / median["batched"]}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
