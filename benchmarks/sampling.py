"""Cost of sampling one training batch relative to one training step, per task family.

For each family: a representative task, a batch of `BATCH` examples, and a small default model
(`workbench.models.Transformer`, 2 layers, d_model 64, 2 heads) trained by one Adam step on that
batch (inputs built from the batch inside the step). Three jitted programs are timed, alternating,
`REPEATS` times each after a warm-up, and their medians kept:

- `step`: the training step on a given batch;
- `sampled_step`: the same step drawing its batch from a key inside the program, which is how
  `workbench.train` runs (the batch never leaves the jitted step);
- `sample`: drawing a batch on its own, as a separate jitted call.

`ratios["sampling_<family>"]` = (sampled_step - step) / step, what sampling adds to a training step
(the target is < 0.05); `ratios["standalone_<family>"]` = sample / step, which also pays a second
dispatch and a round trip of the batch through memory.
"""

import platform
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from workbench.models import Transformer, TransformerConfig
from workbench.tasks import algorithmic as A
from workbench.tasks import boolean as B
from workbench.tasks import classification as C
from workbench.tasks import markov as M
from workbench.tasks import regression_family as R

BATCH = 64
REPEATS = 50


def _regression_inputs(b):
    ys = b.ys.at[:, -1].set(0.0)
    return jnp.concatenate([b.xs, ys[..., None]], -1), b.ys[:, -1]


def _mse_loss(model, x, target):
    return jnp.mean((model.batched(x)[:, -1, 0] - target) ** 2)


def _ce(logits, labels):
    mask = labels >= 0
    ll = jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.maximum(labels, 0)[..., None], -1)[..., 0]
    return -jnp.sum(jnp.where(mask, ll, 0.0)) / jnp.maximum(mask.sum(), 1)


def _families():
    """name -> (task, config, batch -> (inputs, targets), loss(model, inputs, targets))."""
    key = jax.random.key(0)
    small = dict(n_layers=2, d_model=64, n_heads=2, d_head=32)
    reg = R.SparseLinearRegression(d=10, n_points=40, sparsity=3)
    markov = M.DirichletMarkovICL(n_symbols=3, seq_len=100)
    cls = C.InContextClassification(n_classes=512, n_labels=32, key=key)
    boo = B.Conjunction(n_vars=14, n_points=40)
    alg = A.Sort(n_symbols=8, length=8)

    def cls_inputs(b):
        labels = jax.nn.one_hot(b.labels, 32).at[:, -1].set(0.0)
        return jnp.concatenate([b.items, labels], -1), b.labels[:, -1]

    def boo_inputs(b):
        prev = jnp.concatenate([jnp.zeros_like(b.ys[:, :1]), b.ys[:, :-1]], 1)  # label of the previous point
        return jnp.concatenate([b.xs, prev[..., None].astype(jnp.float32)], -1), b.ys

    token_loss = lambda model, x, y: _ce(model.batched(x), y)
    last_loss = lambda model, x, y: _ce(model.batched(x)[:, -1], y)
    return {
        "regression": (reg, TransformerConfig(**small, n_ctx=41, d_input=11, d_vocab_out=1), _regression_inputs, _mse_loss),
        "markov": (markov, TransformerConfig(**small, n_ctx=100, d_vocab=3), lambda b: (b.tokens[:, :-1], b.tokens[:, 1:]), token_loss),
        "classification": (cls, TransformerConfig(**small, n_ctx=9, d_input=63 + 32, d_vocab_out=32), cls_inputs, last_loss),
        "boolean": (boo, TransformerConfig(**small, n_ctx=40, d_input=15, d_vocab_out=2), boo_inputs, token_loss),
        "algorithmic": (alg, TransformerConfig(**small, n_ctx=9, d_vocab=alg.d_vocab, d_vocab_out=alg.d_vocab_out),
                        lambda b: (b.tokens, b.labels), token_loss),
    }


def _interleaved_medians(calls: dict) -> dict:
    """name -> (fn, args): the median time of each call, timed in turn so that a slow spell of the
    machine hits all of them. Each is compiled and warmed up first."""
    for fn, args in calls.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in calls}
    for _ in range(REPEATS):
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _bench(task, config, to_inputs, loss) -> dict:
    model = Transformer(config, key=jax.random.key(1))
    opt = optax.adam(1e-3)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))

    def update(model, opt_state, batch):
        x, y = to_inputs(batch)
        value, grads = eqx.filter_value_and_grad(loss)(model, x, y)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value

    step = eqx.filter_jit(update)
    sampled_step = eqx.filter_jit(lambda model, opt_state, key: update(model, opt_state, task.sample(key, BATCH)))
    sample = eqx.filter_jit(lambda key: task.sample(key, BATCH))
    batch, key = sample(jax.random.key(2)), jax.random.key(3)
    return _interleaved_medians({
        "sample": (sample, (key,)),
        "step": (step, (model, opt_state, batch)),
        "sampled_step": (sampled_step, (model, opt_state, key)),
    })


def run() -> dict:
    results, ratios = [], {}
    for family, (task, config, to_inputs, loss) in _families().items():
        t = _bench(task, config, to_inputs, loss)
        results.append(dict(family=family, task=type(task).__name__, batch=BATCH, sample_s=t["sample"], step_s=t["step"],
                            sampled_step_s=t["sampled_step"]))
        ratios[f"sampling_{family}"] = (t["sampled_step"] - t["step"]) / t["step"]
        ratios[f"standalone_{family}"] = t["sample"] / t["step"]
    machine = dict(platform=platform.platform(), backend=jax.default_backend(),
                   devices=[str(d) for d in jax.devices()], jax=jax.__version__)
    return {"benchmark": "sampling", "machine": machine, "results": results, "ratios": ratios}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
