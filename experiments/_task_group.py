"""Training a group of seeds at once on several tasks, one model per task (a tuple of models): the
set-up that `icl-zfb` and `icl-autoregressive` share.

Each seed draws its key streams `init`, `data` and `eval`; its held-out batch of task `name` comes
from the stream `eval` folded with `train-<name>`, so the evaluation logged during training never
sees the measurement batches drawn later from `eval`.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from workbench.core.rng import derive_key
from workbench.core.types import Key
from workbench.train import Schedule, train, unstack

from ._base import SeedRun


@eqx.filter_jit
def sample_batch(task, key: Key, batch_size: int):
    """`task.sample(key, batch_size)`, compiled once per task and size."""
    return task.sample(key, batch_size)


def train_on_tasks(
    experiment: str,
    config: Any,
    runs: Sequence[SeedRun],
    tasks: Mapping[str, Any],
    init: Callable[[Key], tuple],
    optimizer: optax.GradientTransformation,
    loss_fn: Callable,
    eval_fn: Callable,
    eval_size: int,
) -> list[tuple[tuple, Key]]:
    """Train one vmapped group: each seed's trained models (one per task, in the order of `tasks`) and
    its `eval` key. `config` has `steps`, `log_every`, `eval_every`, `ckpt_every` and `batch_size`."""
    streams = [{name: r.key(name) for name in ("init", "data", "eval")} for r in runs]
    models = eqx.filter_vmap(init)(jnp.stack([st["init"] for st in streams]))
    eval_batches = [
        tuple(sample_batch(t, derive_key(st["eval"], f"train-{name}"), eval_size) for name, t in tasks.items())
        for st in streams
    ]

    def sample(key):
        keys = jax.random.split(key, len(tasks))
        return tuple(t.sample(k, config.batch_size) for t, k in zip(tasks.values(), keys))

    models = train(
        models, optimizer, loss_fn, sample, data_keys=jnp.stack([st["data"] for st in streams]),
        eval_fn=eval_fn, eval_data=jax.tree.map(lambda *xs: jnp.stack(xs), *eval_batches),
        schedule=Schedule(config.steps, config.log_every, config.eval_every, config.ckpt_every),
        seeds=[r.seed for r in runs], run_dirs=[r.dir for r in runs],
        meta={"experiment": experiment, "config": dataclasses.asdict(config)},
        label=f"{experiment} seeds {','.join(str(r.seed) for r in runs)}",
    )
    return [(unstack(models, i), streams[i]["eval"]) for i in range(len(runs))]
