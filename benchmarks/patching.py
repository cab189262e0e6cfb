"""Activation patching: the full layer x head x position matrix in one vmapped call against a loop.

The model has the in-context Markov chain shape (Edelman et al. 2024, scaled up to 4 heads): two
attention-only layers, d_model 64, 4 heads of d_head 16, LayerNorm, learned positions, on chains of
3 symbols and 64 tokens (`DirichletMarkovICL(n_symbols=3, seq_len=64)`). The model is freshly
initialised: the cost does not depend on the weights. 64 clean prompts are paired with 64 corrupted
ones (other chains); the metric is the next-token loss. The sites are every head output (`z`) at
every layer, head and position: 2 x 4 x 64 = 512 sites, each a forward pass on all 64 prompts.

- `batched`: `workbench.interp.activation_patching` on the whole grid, one jitted program including
  the corrupted cache and both baselines. On a GPU all sites are vmapped at once; on CPU the sites
  run in blocks of `CHUNK = 1` inside the program (`jax.lax.map`): the 64 prompts already fill the
  cores, and wider site blocks only add memory traffic (measured: blocks of 8 or 32 sites were
  3-4x slower than blocks of 1 on a 2-core machine).
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

from workbench.interp import Loss, activation_patching, site_grid
from workbench.models import Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites
from workbench.tasks.markov import DirichletMarkovICL

PROMPTS, SEQ, REPEATS = 64, 64, 5
CHUNK = int(os.environ.get("WB_BENCH_CHUNK", "1" if jax.default_backend() == "cpu" else "0")) or None
CONFIG = TransformerConfig(n_layers=2, d_model=64, n_heads=4, d_head=16, n_ctx=SEQ, d_vocab=3, attn_only=True)


def _prompts():
    task = DirichletMarkovICL(n_symbols=3, seq_len=SEQ)
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
    model = Transformer(CONFIG, key=jax.random.key(0))
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
    result = {"sites": int(batched.size), "prompts": PROMPTS, "seq": SEQ, "chunk": CHUNK, "seconds": median,
              "max_abs_diff": float(np.abs(batched - looped).max())}
    machine = dict(platform=platform.platform(), backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
                   jax=jax.__version__, cpu_count=os.cpu_count(), load_average=os.getloadavg())
    return {"benchmark": "patching", "machine": machine, "results": [result],
            "ratios": {"loop_over_batched": median["loop"] / median["batched"]}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
