"""A run killed with SIGKILL at any point resumes to the same files, byte for byte, as an uninterrupted
run with the same seed (wall times aside); a non-finite loss stops the run with a truthful message."""

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

from workbench.core.errors import TrainingDiverged
from workbench.core.io import read_jsonl
from workbench.run.runner import run_experiment
from workbench.train import Schedule, checkpoint, train

STEPS = 300
OVERRIDES = [f"steps={STEPS}", "batch_size=64", "eval_size=64", "eta_prompts=64", "ckpt_every=20", "log_every=10",
             "eval_every=20"]
WALL_TIMES = ("wall_s", "analysed_at")


def wb_args(out: Path) -> list[str]:
    args = [sys.executable, "-m", "workbench.run", "run", "icl-gd", "--seeds", "0", "--out", str(out)]
    for o in OVERRIDES:
        args += ["--set", o]
    return args


def _without_wall_times(obj):
    if isinstance(obj, dict):
        return {k: _without_wall_times(v) for k, v in obj.items() if k not in WALL_TIMES}
    if isinstance(obj, list):
        return [_without_wall_times(v) for v in obj]
    return obj


def snapshot(out: Path) -> dict[str, object]:
    """Every file under `out` (temporary ones included): its bytes, or for a summary its JSON without wall times."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            key = str(path.relative_to(out))
            files[key] = _without_wall_times(json.loads(path.read_text())) if path.name == "summary.json" else path.read_bytes()
    return files


def differing(got: dict[str, object], want: dict[str, object]) -> list[str]:
    """The files that are missing, extra, or different (for a summary, which of its fields)."""
    out = []
    for k in sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k)):
        a, b = got.get(k), want.get(k)
        both = isinstance(a, dict) and isinstance(b, dict)
        fields = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f)) if both else []
        detail = ", ".join(f"{f}: {a.get(f)!r:.300} != {b.get(f)!r:.300}" for f in fields)
        out.append(f"{k} ({detail})" if fields else k)
    return out


def seed_dir(out: Path) -> Path | None:
    return next(out.glob("icl-gd/*/seed-0"), None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_experiment("icl-gd", seeds=[0], overrides=OVERRIDES, out=out)
    return snapshot(out)


def _step0_logged(d: Path) -> bool:
    return any(r["step"] == 0 for r in read_jsonl(d / "metrics.jsonl"))


KILL_POINTS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], bool]]] = {
    # name: (kill as soon as this holds, what must hold after the kill)
    "after the step-0 eval, before any checkpoint": (
        lambda d: _step0_logged(d) and not checkpoint.steps(d),
        lambda d: _step0_logged(d) and not checkpoint.steps(d)),
    "between checkpoints": (
        lambda d: bool(checkpoint.steps(d)),
        lambda d: 0 < checkpoint.steps(d)[-1] < STEPS),
    "after the last checkpoint, while finishing": (
        lambda d: STEPS in checkpoint.steps(d),
        lambda d: STEPS in checkpoint.steps(d)),
}


def kill_when(out: Path, ready: Callable[[Path], bool]) -> tuple[bool, float]:
    """Start `wb run` on `out`, SIGKILL it as soon as `ready(seed folder)` holds; whether the kill came
    before the run finished, and the seconds it ran."""
    started = time.time()
    proc = subprocess.Popen(wb_args(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and time.time() < started + 300:
        d = seed_dir(out)
        if d is not None and ready(d):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    return proc.wait() == -signal.SIGKILL, time.time() - started


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_is_byte_identical(point, uninterrupted, tmp_path):
    ready, held = KILL_POINTS[point]
    assert kill_when(tmp_path, ready)[0], "the run finished before it could be killed"
    assert held(seed_dir(tmp_path)), f"killed outside the window {point!r}"
    run_experiment("icl-gd", seeds=[0], overrides=OVERRIDES, out=tmp_path)
    assert differing(snapshot(tmp_path), uninterrupted) == []


@pytest.mark.slow
def test_ten_sigkills_at_random_times_each_resume_byte_identical(uninterrupted, tmp_path):
    started = time.time()
    subprocess.run(wb_args(tmp_path / "whole"), check=True, capture_output=True, timeout=600)
    duration = time.time() - started
    assert differing(snapshot(tmp_path / "whole"), uninterrupted) == []  # a fresh process, the same files
    rng = random.Random(0)
    kills, attempts = 0, 0
    while kills < 10 and attempts < 20:  # a run faster than `duration` may finish first: draw again
        out = tmp_path / f"trial-{attempts}"
        attempts += 1
        delay = rng.uniform(0.0, 0.9 * duration)
        killed_at = time.time() + delay
        killed, ran = kill_when(out, lambda d: time.time() >= killed_at)
        duration = min(duration, ran) if not killed else duration
        run_experiment("icl-gd", seeds=[0], overrides=OVERRIDES, out=out)
        assert differing(snapshot(out), uninterrupted) == [], f"{out.name}: killed {delay:.1f}s after the start"
        kills += killed
    assert kills == 10, f"only {kills} of {attempts} runs were killed before they finished"


def _diverging_run(tmp_path: Path, ckpt_every: int):
    # loss = -w^2 under SGD(lr=1) triples w each step: it overflows to -inf after ~40 steps.
    model = eqx.nn.Linear(1, 1, use_bias=False, key=jax.random.key(0))
    models = jax.tree.map(lambda x: x[None], eqx.tree_at(lambda m: m.weight, model, jnp.ones((1, 1))))
    loss_fn = lambda m, batch: -jnp.sum(m.weight**2) + 0 * batch
    train(models, optax.sgd(1.0), loss_fn, lambda key: jnp.zeros(()), data_keys=jax.random.split(jax.random.key(0), 1),
          eval_fn=lambda m, data: {"w": m.weight[0, 0]}, eval_data=jnp.zeros(1),
          schedule=Schedule(steps=100, log_every=10, eval_every=10, ckpt_every=ckpt_every),
          seeds=[0], run_dirs=[tmp_path], meta={})


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="last good checkpoint is step 40") as info:
        _diverging_run(tmp_path, ckpt_every=10)
    assert 40 < info.value.step <= 50 and info.value.seeds == [0]
    assert checkpoint.steps(tmp_path)[-1] == 40


def test_divergence_before_any_checkpoint_says_so(tmp_path):
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet, so a rerun starts this seed from step 0"):
        _diverging_run(tmp_path, ckpt_every=100)
    assert checkpoint.steps(tmp_path) == []
