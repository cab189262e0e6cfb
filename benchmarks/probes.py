"""Ridge probes at every (layer, position): one vmapped workbench sweep against a per-site scikit-learn loop.

The model has the icl-probes shape scaled up: 4 layers, d_model 128, 4 heads, MLP 512, LayerNorm,
vector inputs, freshly initialised (the cost does not depend on the weights). 4,096 in-context
regression prompts of length 41 (d = 8: 20 (x, y) pairs interleaved, then the query x); the target at
every position is the prompt's weight vector w (8 numbers). Sites: resid_post of 4 layers x 41
positions = 164 ridge fits, 5/6 of the prompts to fit (5 folds) and 1/6 held out (the same split on both sides).

- `workbench`: `interp.probes.probe_resid` (no control target): prompts stream through the model
  512 at a time into per-site sufficient statistics, then one vmapped call fits every site, choosing
  the penalty from 17 candidates by 5-fold cross-validation, and scores it on the held-out prompts.
- `sklearn`: the activations of every layer cached once (one jitted forward pass), then for each
  site `sklearn.linear_model.RidgeCV(alphas)` on the same training prompts (its efficient
  leave-one-out CV, the fastest path scikit-learn offers) and `r2_score` on the held-out ones.

Each side runs in its own subprocess, so that its peak resident memory (`ru_maxrss`, reported also
above the process's footprint after imports and model init) is its own. The workbench side is warmed
up first (compile excluded: a sweep compiles once per shape); times are medians of `REPEATS`.
`ratios["sklearn_over_workbench"]` is the sklearn time / the workbench time (goal >= 5).
scikit-learn is a dev dependency (`pip install -e .[dev]`), imported only here.
"""

import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from workbench.core.errors import WorkbenchError
from workbench.interp import probes
from workbench.models import Transformer, TransformerConfig, run_with_cache, sites

try:
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
except ImportError:  # reported by run(), so that `wb bench probes` fails with one line
    RidgeCV = None

PROMPTS, SEQ, D, REPEATS = 4096, 41, 8, 3
CONFIG = TransformerConfig(n_layers=4, d_model=128, n_heads=4, d_head=32, n_ctx=SEQ, d_input=D + 1,
                           d_vocab_out=1, d_mlp=512)


def _setup():
    model = Transformer(CONFIG, key=jax.random.key(0))
    kx, kw = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (PROMPTS, SEQ // 2 + 1, D))
    ws = jax.random.normal(kw, (PROMPTS, D))
    ys = jnp.einsum("pnd,pd->pn", xs, ws)
    tokens = jnp.zeros((PROMPTS, SEQ, D + 1))
    tokens = tokens.at[:, 0::2, :D].set(xs).at[:, 1::2, D].set(ys[:, : SEQ // 2])
    targets = jnp.broadcast_to(ws[:, None], (PROMPTS, SEQ, D))
    return model, tokens, targets


def _workbench(model, tokens, targets) -> probes.ProbeSweep:
    sweep = probes.probe_resid(model, tokens, targets, key=jax.random.key(2), control=False)
    jax.block_until_ready(sweep.r2.values)
    return sweep


@eqx.filter_jit
def _cache(model, tokens):
    names = tuple(sites.resid_post(l) for l in range(CONFIG.n_layers))
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, names))(tokens)
    return jnp.stack([cache[n] for n in names])  # [layer, prompt, pos, d_model]


def _sklearn(model, tokens, targets) -> np.ndarray:
    groups = np.asarray(probes.sweep_groups(jax.random.split(jax.random.key(2))[0], PROMPTS, 5, 512)[1])
    train, test = groups < 5, groups == 5
    acts, y = np.asarray(_cache(model, tokens)), np.asarray(targets[:, 0])
    alphas = np.asarray(probes.DEFAULT_LAMS) * train.sum()  # sklearn penalises the sum, not the mean
    r2 = np.zeros((CONFIG.n_layers, SEQ))
    for layer in range(CONFIG.n_layers):
        for pos in range(SEQ):
            fit = RidgeCV(alphas=alphas).fit(acts[layer, train, pos], y[train])
            r2[layer, pos] = r2_score(y[test], fit.predict(acts[layer, test, pos]))
    return r2


def _child(side: str) -> dict:
    model, tokens, targets = _setup()
    jax.block_until_ready(tokens)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn = _workbench if side == "workbench" else _sklearn
    if side == "workbench":
        fn(model, tokens, targets)  # compile
    else:
        jax.block_until_ready(_cache(model, tokens))  # compile the forward pass (the workbench's is excluded too)
    times, out = [], None
    for _ in range(REPEATS if side == "workbench" else 1):
        start = time.perf_counter()
        out = fn(model, tokens, targets)
        times.append(time.perf_counter() - start)
    r2 = np.asarray(out.r2.values) if side == "workbench" else out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": statistics.median(times), "peak_rss_mb": peak / 1024, "peak_above_setup_mb": (peak - base) / 1024,
            "r2_last_layer_last_pos": float(r2[-1, -1]), "r2_mean": float(r2.mean())}


def run() -> dict:
    if RidgeCV is None:
        raise WorkbenchError("scikit-learn is not installed (the probes benchmark compares against it)",
                             "pip install -e '.[dev]'")
    results = {}
    for side in ("workbench", "sklearn"):
        proc = subprocess.run([sys.executable, __file__, side], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise WorkbenchError(f"the {side} side of the probes benchmark failed: {proc.stderr.strip()[-300:]}",
                                 "run `python benchmarks/probes.py " + side + "` to see the error")
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    wb, sk = results["workbench"], results["sklearn"]
    return {
        "benchmark": "probes",
        "machine": {"platform": platform.platform(), "backend": jax.default_backend(), "devices": jax.device_count()},
        "results": [{"label": side, "sites": CONFIG.n_layers * SEQ, "prompts": PROMPTS, **r} for side, r in results.items()],
        "ratios": {"sklearn_over_workbench": sk["seconds"] / wb["seconds"],
                   "sklearn_peak_over_workbench_peak": sk["peak_rss_mb"] / wb["peak_rss_mb"]},
    }


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1])))
