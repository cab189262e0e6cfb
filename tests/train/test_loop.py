"""The training loop keeps its results: the logged losses of a fixed seed equal a plain per-step loop
(one model, no vmap, no donation, the loss fetched every step) to float32 rounding; how often losses
are fetched changes nothing; a divergence is reported at its first non-finite step."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from workbench.core.errors import TrainingDiverged
from workbench.core.io import read_jsonl
from workbench.models import Transformer, TransformerConfig
from workbench.train import Schedule, checkpoint, stack, train

CONFIG = TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=8, d_vocab=11)
STEPS, SEEDS = 24, [0, 1]
OPTIMIZER = optax.adamw(1e-2)


def loss_fn(model: Transformer, tokens: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(model.batched(tokens[:, :-1]), -1)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()


def sample(key: jax.Array) -> jax.Array:
    return jax.random.randint(key, (4, CONFIG.n_ctx + 1), 0, CONFIG.d_vocab)


def init(seed: int) -> Transformer:
    return Transformer(CONFIG, key=jax.random.key(seed))


def data_key(seed: int) -> jax.Array:
    return jax.random.key(100 + seed)


@eqx.filter_jit
def reference_step(model, opt_state, key, t):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model, sample(jax.random.fold_in(key, t)))
    updates, opt_state = OPTIMIZER.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss


def reference_losses(seed: int) -> np.ndarray:
    """What the loop computes for one seed, written as the plainest loop (a host fetch every step)."""
    model = init(seed)
    opt_state, losses = OPTIMIZER.init(eqx.filter(model, eqx.is_array)), []
    for t in range(STEPS):
        model, opt_state, loss = reference_step(model, opt_state, data_key(seed), jnp.asarray(t))
        losses.append(float(loss))
    return np.asarray(losses)


def run(tmp_path, schedule: Schedule) -> tuple[dict[int, dict[int, float]], Transformer, Transformer]:
    """Train both seeds as one vmapped group: each seed's logged train losses by step, the models passed in, the trained ones."""
    models = stack([init(s) for s in SEEDS])
    dirs = [tmp_path / f"seed-{s}" for s in SEEDS]
    trained = train(models, OPTIMIZER, loss_fn, sample, data_keys=jnp.stack([data_key(s) for s in SEEDS]),
                    eval_fn=lambda m, x: {"logit": m.batched(x)[0, 0, 0]}, eval_data=jnp.zeros((2, 1, 4), jnp.int32),
                    schedule=schedule, seeds=SEEDS, run_dirs=dirs, meta={})
    logged = {}
    for s, d in zip(SEEDS, dirs):
        rows = [r for r in read_jsonl(d / "metrics.jsonl") if r["split"] == "train"]
        logged[s] = {r["step"]: r["value"] for r in rows}
    return logged, models, trained


@pytest.fixture(scope="module")
def every_step(tmp_path_factory):
    return run(tmp_path_factory.mktemp("every-step"), Schedule(STEPS, log_every=1, eval_every=STEPS, ckpt_every=STEPS))


def test_losses_of_a_fixed_seed_equal_a_plain_per_step_loop(every_step):
    logged, _, _ = every_step
    for s in SEEDS:
        got = np.asarray([logged[s][t] for t in range(1, STEPS + 1)])
        np.testing.assert_allclose(got, reference_losses(s), rtol=1e-5)


def test_fetching_losses_less_often_changes_nothing(every_step, tmp_path):
    sparse, _, trained = run(tmp_path, Schedule(STEPS, log_every=7, eval_every=11, ckpt_every=13))
    dense, models, dense_trained = every_step
    for s in SEEDS:
        assert sorted(sparse[s]) == [7, 14, 21, 24]
        assert {t: dense[s][t] for t in sparse[s]} == sparse[s]  # bit for bit
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), eqx.filter(trained, eqx.is_array),
                                     eqx.filter(dense_trained, eqx.is_array)))
    # the step donates its inputs; the models passed to `train` stay usable
    assert not any(x.is_deleted() for x in jax.tree.leaves(eqx.filter(models, eqx.is_array)))


def first_overflow_step() -> int:
    """loss = -w^2 under SGD(lr=1) triples w: the first step whose float32 loss is -inf."""
    w = np.float32(1.0)
    for step in range(1, 100):
        with np.errstate(over="ignore"):
            if not np.isfinite(-(w * w)):
                return step
            w = w * np.float32(3.0)
    raise AssertionError("no overflow")


@pytest.mark.parametrize("every", [10, 100])
def test_divergence_is_reported_at_its_first_non_finite_step(tmp_path, every):
    model = eqx.nn.Linear(1, 1, use_bias=False, key=jax.random.key(0))
    models = jax.tree.map(lambda x: x[None], eqx.tree_at(lambda m: m.weight, model, jnp.ones((1, 1))))
    with pytest.raises(TrainingDiverged) as info:
        train(models, optax.sgd(1.0), lambda m, batch: -jnp.sum(m.weight**2) + 0 * batch, lambda key: jnp.zeros(()),
              data_keys=jax.random.split(jax.random.key(0), 1), eval_fn=lambda m, data: {"w": m.weight[0, 0]},
              eval_data=jnp.zeros(1), schedule=Schedule(100, log_every=every, eval_every=every, ckpt_every=every),
              seeds=[0], run_dirs=[tmp_path], meta={})
    assert info.value.step == first_overflow_step() and f"at step {info.value.step} " in str(info.value)
    assert all(s < info.value.step for s in checkpoint.steps(tmp_path))
