"""The training loop: several seeds at once (a leading seed axis, vmapped), resumable, logged.

Batch `t` of seed `s` is `task(fold_in(data_key_s, t))`, sampled inside the jitted step, so a run
resumed from a checkpoint at step `t` sees exactly the batches of an uninterrupted run.
"""

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from workbench.core.errors import TrainingDiverged, WorkbenchError
from workbench.core.io import MetricsLog, remove_stale_temps

from . import checkpoint
from .sharding import seed_mesh, shard_seeds

# Losses stay on device between log, eval and checkpoint steps; fetched at least this often (NaN-stop).
FETCH_EVERY = 100

LossFn = Callable[[Any, Any], jax.Array]  # (model, batch) -> scalar loss


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps: int
    log_every: int = 100
    eval_every: int = 500
    ckpt_every: int = 1000


def make_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, sample: Callable[[jax.Array], Any], *,
              donate: bool = False):
    """One jitted update of a stack of models: `(models, opt_states, data_keys, t) -> (models, opt_states, losses)`.

    With `donate`, the buffers of `models` and `opt_states` are reused for the updated ones (the arrays
    passed in are deleted); `data_keys` is kept."""

    def one(model, opt_state, data_key, t):
        batch = sample(jax.random.fold_in(data_key, t))
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, batch)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    def keys_first(data_keys, models, opt_states, t):
        return eqx.filter_vmap(one, in_axes=(0, 0, 0, None))(models, opt_states, data_keys, t)

    jitted = eqx.filter_jit(keys_first, donate="all-except-first" if donate else "none")

    def step(models, opt_states, data_keys, t):
        return jitted(data_keys, models, opt_states, t)

    return step


def unstack(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


class _Progress:
    """A rich progress bar on a terminal, plain log lines otherwise (both on stderr)."""

    def __init__(self, label: str, total: int, start: int):
        self.label, self.total = label, total
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=start, info="")

    def update(self, step: int, info: str, log: bool) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif log:
            print(f"[{self.label}] step {step}/{self.total} {info}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _resume_step(run_dirs: list[Path]) -> int:
    """The newest step at which every seed has a checkpoint (0 if none)."""
    common = set.intersection(*(set(checkpoint.steps(d)) for d in run_dirs))
    return max(common, default=0)


def _last_good(run_dirs: list[Path]) -> str:
    last = _resume_step(run_dirs)
    return f"last good checkpoint is step {last}" if last else "no checkpoint was written yet, so a rerun starts this seed from step 0"


def _copy(tree: Any) -> Any:
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree.map(jnp.copy, arrays), static)


def _check_finite(window: np.ndarray, step: int, seeds: list[int], run_dirs: list[Path]) -> np.ndarray:
    """The last row of `window [steps, seed]` (the losses up to `step`); raises `TrainingDiverged` at
    the first step with a non-finite loss."""
    finite = np.isfinite(window)
    if not finite.all():
        row = int(np.argmin(finite.all(axis=1)))
        bad = [s for s, ok in zip(seeds, finite[row]) if not ok]
        at = step - len(window) + 1 + row
        raise TrainingDiverged(
            f"loss became {window[row][~finite[row]][0]} at step {at} for seed(s) {bad}; {_last_good(run_dirs)}",
            at, bad,
        )
    return window[-1]


def train(
    models: Any,
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    sample: Callable[[jax.Array], Any],
    *,
    data_keys: jax.Array,
    eval_fn: Callable[[Any, Any], dict[str, jax.Array]],
    eval_data: Any,
    schedule: Schedule,
    seeds: list[int],
    run_dirs: list[Path],
    meta: dict[str, Any],
    label: str = "train",
) -> Any:
    """Train a stack of models (leading axis = seeds) and return the trained stack.

    `sample(key) -> batch` draws one seed's batch; `eval_fn(model, data) -> {name: value}` evaluates
    one model on its fixed eval data (`eval_data` is stacked over seeds; both are vmapped here). Resumes from the newest common
    checkpoint in `run_dirs`; raises `TrainingDiverged` on a non-finite loss (no checkpoint written).
    """
    if schedule.steps < 1:
        raise WorkbenchError(f"steps must be >= 1, got {schedule.steps}", "e.g. --set steps=1000")
    opt_states = eqx.filter_vmap(lambda m: optimizer.init(eqx.filter(m, eqx.is_array)))(models)
    for d in run_dirs:  # what a kill during an atomic write or a checkpoint save left behind
        remove_stale_temps(Path(d))
        checkpoint.prune(Path(d))
    logs = [MetricsLog(Path(d) / "metrics.jsonl") for d in run_dirs]
    start = _resume_step(run_dirs)
    if start:
        like = (unstack(models, 0), unstack(opt_states, 0))
        trees = [checkpoint.load(d, start, like, {"seed": s}) for d, s in zip(run_dirs, seeds)]
        models = stack([t[0] for t in trees])
        opt_states = stack([t[1] for t in trees])
    for log in logs:  # from step 0 the step-0 evaluation is logged again, so nothing is kept
        log.truncate_after(start if start else -1)
    mesh = seed_mesh(len(seeds), jax.local_devices()) if jax.local_device_count() > 1 else None
    if mesh is not None:
        models, opt_states, data_keys, eval_data = shard_seeds((models, opt_states, data_keys, eval_data), mesh)
        print(f"[{label}] {len(seeds)} seeds over {mesh.size} devices", file=sys.stderr, flush=True)
    elif start == 0:  # the step donates its inputs: keep the caller's models alive
        models = _copy(models)
    step_fn = make_step(loss_fn, optimizer, sample, donate=True)
    evaluate = eqx.filter_jit(eqx.filter_vmap(eval_fn))

    def log_eval(step: int) -> dict[str, np.ndarray]:
        values = {k: np.asarray(v) for k, v in evaluate(models, eval_data).items()}
        for i, log in enumerate(logs):
            log.log(step, "eval", {k: v[i] for k, v in values.items()})
        return values

    if start == 0:
        log_eval(0)
    progress = _Progress(label, schedule.steps, start)
    pending: list[jax.Array] = []  # the losses [seed] of the steps since the last fetch, on device
    info = ""
    t0 = time.perf_counter()
    try:
        for t in range(start, schedule.steps):
            models, opt_states, losses = step_fn(models, opt_states, data_keys, jnp.asarray(t))
            pending.append(losses)
            step = t + 1
            is_log = step % schedule.log_every == 0 or step == schedule.steps
            is_eval = step % schedule.eval_every == 0 or step == schedule.steps
            is_ckpt = step % schedule.ckpt_every == 0 or step == schedule.steps
            if is_log or is_eval or is_ckpt or len(pending) == FETCH_EVERY:
                losses = _check_finite(np.stack(jax.device_get(pending)), step, seeds, run_dirs)
                pending = []
                rate = (step - start) / (time.perf_counter() - t0)
                info = f"loss {losses.mean():.4f} ({rate:.0f} steps/s)"
                if is_log:
                    for i, log in enumerate(logs):
                        log.log(step, "train", {"loss": losses[i]})
                if is_eval:
                    log_eval(step)
                if is_ckpt:
                    for i, d in enumerate(run_dirs):
                        tree = (unstack(models, i), unstack(opt_states, i))
                        checkpoint.save(d, step, tree, {**meta, "seed": seeds[i]})
            progress.update(step, info, is_log)
    finally:
        progress.close()
    return models



def load_trained(run_dir: Path, like: Any, optimizer: optax.GradientTransformation) -> Any:
    """The model saved by `train` at the newest checkpoint of one seed's `run_dir`.

    `like` is any model of the same structure (e.g. freshly initialised); the checkpoint holds
    `(model, opt_state)`, so the optimiser's state is rebuilt from `optimizer` to read it.
    """
    steps = checkpoint.steps(Path(run_dir))
    if not steps:
        raise WorkbenchError(f"{run_dir} holds no checkpoint", "train it first: wb run NAME")
    opt_like = optimizer.init(eqx.filter(like, eqx.is_array))
    return checkpoint.load(Path(run_dir), steps[-1], (like, opt_like))[0]
