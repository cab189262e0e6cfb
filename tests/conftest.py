"""Shared fixtures: finished small runs (trained once per session, reused by the experiment, notebook and
report tests) and small helpers."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# One persistent compilation cache for this test session, shared with the subprocesses it starts
# (CLI runs, the notebook kernel), so each jitted function compiles once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="wb-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


# The scaled-down icl-zfb run of its experiment test, which the icl_regression notebook reuses (its WB_SET).
TINY_ICL_ZFB = ["steps=300", "batch_size=256", "eval_size=2000", "eval_every=100", "ckpt_every=300", "log_every=50"]


@pytest.fixture(scope="session")
def tiny_icl_zfb(tmp_path_factory) -> tuple[Path, object, list[str]]:
    """Two seeds of `wb run icl-zfb --preset quick --vmap --set ...`: runs folder, summary, overrides."""
    from workbench.run.runner import run_experiment

    out = tmp_path_factory.mktemp("runs-zfb")
    summary = run_experiment("icl-zfb", preset="quick", seeds=[0, 1], overrides=TINY_ICL_ZFB, out=out, vmap=True)
    return out, summary, TINY_ICL_ZFB


# The scaled-down markov-icl run of its experiment test, which the induction_heads notebook reuses (its WB_SET).
TINY_MARKOV_ICL = ["steps=40", "seq_len=16", "eval_size=32", "progress_prompts=16", "patch_prompts=8", "eval_every=10",
                   "log_every=10", "ckpt_every=20", "smooth_window=3"]


@pytest.fixture(scope="session")
def tiny_markov_icl(tmp_path_factory) -> tuple[Path, object, list[str]]:
    """One seed of `wb run markov-icl --preset quick --vmap --set ...`: runs folder, summary, overrides."""
    from workbench.run.runner import run_experiment

    out = tmp_path_factory.mktemp("runs-markov")
    summary = run_experiment("markov-icl", preset="quick", seeds=[0], overrides=TINY_MARKOV_ICL, out=out, vmap=True)
    return out, summary, TINY_MARKOV_ICL


@pytest.fixture(scope="session")
def quick_icl_gd(tmp_path_factory) -> tuple[Path, dict]:
    """Two seeds of `wb run icl-gd --preset quick --vmap`, shared by the experiment and report tests."""
    from workbench.run.runner import run_experiment

    runs = tmp_path_factory.mktemp("runs")
    summary = run_experiment("icl-gd", preset="quick", seeds=[0, 1], out=runs, vmap=True)
    return runs, summary


@pytest.fixture(scope="session")
def tiny_group(tmp_path_factory):
    """`tiny_group(name, overrides)`: one seed of `wb run NAME --preset quick --vmap --set ...`, as
    (group folder, summary, config)."""
    from workbench.run.runner import group_dir, load_experiment, make_config, run_experiment

    def run(name: str, overrides: list[str]) -> tuple[Path, object, object]:
        out = tmp_path_factory.mktemp(f"runs-{name}")
        summary = run_experiment(name, preset="quick", seeds=[0], overrides=overrides, out=out, vmap=True)
        config = make_config(load_experiment(name), "quick", overrides)
        return group_dir(out, name, summary.config_hash, vmap=True), summary, config

    return run

