"""Cost of sampling one training batch relative to one training step, per task family.

For each family: a representative task, a batch of `BATCH` examples, and a small default model
(`workbench.models.Transformer`, 2 layers, d_model 64, 2 heads) trained by one Adam step on that
batch (inputs built from the batch inside the step). Both are jitted and warmed up; each time is
the median of `REPEATS` timed calls. `ratios["sampling_<family>"]` = sample time / step time
(the target is < 0.05).
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
REPEATS = 20


def _regression_inputs(b):
    ys = b.ys.at[:, -1].set(0.0)
    return jnp.concatenate([b.xs, ys[..., None]], -1), b.ys[:, -1]


def _mse_loss(model, x, target):
    return jnp.mean((jax.vmap(model)(x)[:, -1, 0] - target) ** 2)


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

    token_loss = lambda model, x, y: _ce(jax.vmap(model)(x), y)
    last_loss = lambda model, x, y: _ce(jax.vmap(model)(x)[:, -1], y)
    return {
        "regression": (reg, TransformerConfig(**small, n_ctx=41, d_input=11, d_vocab_out=1), _regression_inputs, _mse_loss),
        "markov": (markov, TransformerConfig(**small, n_ctx=100, d_vocab=3), lambda b: (b.tokens[:, :-1], b.tokens[:, 1:]), token_loss),
        "classification": (cls, TransformerConfig(**small, n_ctx=9, d_input=63 + 32, d_vocab_out=32), cls_inputs, last_loss),
        "boolean": (boo, TransformerConfig(**small, n_ctx=40, d_input=15, d_vocab_out=2), boo_inputs, token_loss),
        "algorithmic": (alg, TransformerConfig(**small, n_ctx=9, d_vocab=alg.d_vocab, d_vocab_out=alg.d_vocab_out),
                        lambda b: (b.tokens, b.labels), token_loss),
    }


def _median_time(fn, *args) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bench(task, config, to_inputs, loss) -> tuple[float, float]:
    model = Transformer(config, key=jax.random.key(1))
    opt = optax.adam(1e-3)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, batch):
        x, y = to_inputs(batch)
        value, grads = eqx.filter_value_and_grad(loss)(model, x, y)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value

    sample = eqx.filter_jit(lambda key: task.sample(key, BATCH))
    batch = sample(jax.random.key(2))
    t_sample = _median_time(sample, jax.random.key(3))
    t_step = _median_time(step, model, opt_state, batch)
    return t_sample, t_step


def run() -> dict:
    results, ratios = [], {}
    for family, (task, config, to_inputs, loss) in _families().items():
        t_sample, t_step = _bench(task, config, to_inputs, loss)
        results.append(dict(family=family, task=type(task).__name__, batch=BATCH, sample_s=t_sample, step_s=t_step))
        ratios[f"sampling_{family}"] = t_sample / t_step
    machine = dict(platform=platform.platform(), backend=jax.default_backend(),
                   devices=[str(d) for d in jax.devices()], jax=jax.__version__)
    return {"benchmark": "sampling", "machine": machine, "results": results, "ratios": ratios}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
