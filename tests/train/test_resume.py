"""Seeded runs are reproducible, and a run killed with SIGKILL resumes to bit-identical results."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

from workbench.core.errors import TrainingDiverged
from workbench.train import Schedule, checkpoint, train

OVERRIDES = ["steps=300", "batch_size=64", "eval_size=64", "eta_prompts=64", "ckpt_every=20", "log_every=10",
             "eval_every=20"]


def wb_args(out: Path) -> list[str]:
    args = [sys.executable, "-m", "workbench.run", "run", "icl-gd", "--seeds", "0", "--out", str(out)]
    for o in OVERRIDES:
        args += ["--set", o]
    return args


def wb_run(out: Path) -> None:
    proc = subprocess.run(wb_args(out), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def seed_dir(out: Path) -> Path:
    return next(out.glob("icl-gd/*/seed-0"))


def final_state(out: Path) -> tuple[bytes, bytes]:
    d = seed_dir(out)
    return (d / "checkpoints" / "step-00000300.eqx").read_bytes(), (d / "metrics.jsonl").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    wb_run(out)
    return out


def test_same_seed_gives_identical_metrics_and_parameters(uninterrupted, tmp_path):
    wb_run(tmp_path)
    assert final_state(tmp_path) == final_state(uninterrupted)


def test_sigkill_then_resume_is_bit_identical(uninterrupted, tmp_path):
    proc = subprocess.Popen(wb_args(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill mid-run, once a checkpoint past the first exists
        folders = list(tmp_path.glob("icl-gd/*/seed-0"))
        if folders and len(checkpoint.steps(folders[0])) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_at_kill = checkpoint.steps(seed_dir(tmp_path))
    assert steps_at_kill and steps_at_kill[-1] < 300, "the run finished before it could be killed"
    wb_run(tmp_path)
    assert final_state(tmp_path) == final_state(uninterrupted)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # loss = -w^2 under SGD(lr=1) triples w each step: it overflows to -inf after ~40 steps.
    model = eqx.nn.Linear(1, 1, use_bias=False, key=jax.random.key(0))
    models = jax.tree.map(lambda x: x[None], eqx.tree_at(lambda m: m.weight, model, jnp.ones((1, 1))))
    loss_fn = lambda m, batch: -jnp.sum(m.weight**2) + 0 * batch
    with pytest.raises(TrainingDiverged, match="last good checkpoint is step 40") as info:
        train(models, optax.sgd(1.0), loss_fn, lambda key: jnp.zeros(()), data_keys=jax.random.split(jax.random.key(0), 1),
              eval_fn=lambda m, data: {"w": m.weight[0, 0]}, eval_data=jnp.zeros(1),
              schedule=Schedule(steps=100, log_every=10, eval_every=10, ckpt_every=10),
              seeds=[0], run_dirs=[tmp_path], meta={})
    assert 40 < info.value.step <= 50 and info.value.seeds == [0]
    assert checkpoint.steps(tmp_path)[-1] == 40
