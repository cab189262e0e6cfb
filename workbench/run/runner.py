"""Run experiments into run folders: `<out>/<experiment>/<config-hash>/seed-<s>/`.

A group trained with `vmap` lives in `<config-hash>-vmap/`: vmapped seeds differ from sequential ones
by float32 rounding, so the two are different runs. Each seed folder holds `config.json`, `metrics.jsonl`, `checkpoints/`, `summary.json` (status and
checks) and whatever the experiment writes. The group folder `<config-hash>/` holds the analysis
over seeds: `analysis.json`, `summary.json` (aggregated checks) and `figures/*.json` (plotly).
"""

import os
import shutil
import time
from pathlib import Path
from typing import Any

from workbench import experiments
from workbench.core import apply_overrides, config_hash, config_to_dict
from workbench.core.errors import TrainingDiverged, WorkbenchError
from workbench.core.config import dict_hash
from workbench.core.io import is_temp, read_json, remove_stale_temps, write_json_atomic
from workbench.core.results import GroupSummary, SeedSummary, aggregate_checks
from workbench.experiments import Experiment, SeedRun
from workbench.report import git_commit

PRESETS = ("quick", "default", "paper")
MAX_SEEDS = 100  # a larger --seeds needs --max-seeds: each seed is a folder and a training run
REPO = Path(__file__).resolve().parents[2]


def load_experiment(name: str) -> Experiment:
    try:
        return experiments.load(name)
    except experiments.UnknownExperiment:
        raise WorkbenchError(f"unknown experiment {name!r}", f"choose one of: {', '.join(experiments.names())}") from None


def parse_seeds(text: str, max_seeds: int = MAX_SEEDS) -> list[int]:
    """`"0-4"` -> [0, 1, 2, 3, 4]; `"1,3,7"` and `"2"` also work. More than `max_seeds` is refused."""
    ranges: list[range] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ranges.append(range(lo, hi + 1))
            else:
                ranges.append(range(int(part), int(part) + 1))
    except ValueError:
        raise WorkbenchError(f"bad seed range {text!r}", "write e.g. --seeds 0-4 or --seeds 0,3,7") from None
    count = sum(len(r) for r in ranges)
    if count > max_seeds:
        raise WorkbenchError(f"--seeds {text} asks for {count} seeds, more than the limit of {max_seeds}",
                             f"pass --max-seeds {count} to allow it")
    seeds = [s for r in ranges for s in r]
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise WorkbenchError(f"bad seed range {text!r}: seeds must be distinct and >= 0", "write e.g. --seeds 0-4")
    return seeds


def make_config(experiment: Experiment, preset: str, overrides: list[str]) -> Any:
    if preset not in PRESETS:
        raise WorkbenchError(f"unknown preset {preset!r}", f"choose one of: {', '.join(PRESETS)}")
    try:
        return apply_overrides(experiment.presets[preset], overrides)
    except ValueError as e:  # the experiment's own config validation
        raise WorkbenchError(f"--set: {e}") from None


def group_dir(out: Path, name: str, digest: str, vmap: bool) -> Path:
    """The folder of a group of seeds: `<out>/<name>/<digest>`, `-vmap` appended for a vmapped group."""
    return Path(out) / name / (f"{digest}-vmap" if vmap else digest)


def _check_out(group: Path) -> None:
    """Create the group folder, or say in one line why `--out` cannot hold it."""
    try:
        group.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkbenchError(f"cannot create the run folder {group}: {e.strerror or e}",
                             "pass --out a folder you can write to") from None
    if not os.access(group, os.W_OK | os.X_OK):
        raise WorkbenchError(f"cannot write to the run folder {group}", "pass --out a folder you can write to")


def _read_record(seed_dir: Path) -> dict[str, Any] | None:
    """The seed folder's `config.json` (None if it has none); refused if unreadable or hand-edited."""
    config_path = seed_dir / "config.json"
    if not config_path.exists():
        return None
    try:
        existing = read_json(config_path)
        recorded, digest = existing["config_hash"], dict_hash(existing["config"])
    except (OSError, ValueError, KeyError, TypeError):
        raise WorkbenchError(f"{config_path} is unreadable", f"move {seed_dir} away or rerun with --force") from None
    if recorded != digest:
        raise WorkbenchError(f"{config_path} was edited: its config hashes to {digest}, not to the {recorded} it "
                             "records", f"restore it, or move {seed_dir} away, or rerun with --force")
    return existing


def _owned(existing: dict[str, Any], record: dict[str, Any]) -> bool:
    return all(existing.get(k, False) == record[k] for k in ("experiment", "config_hash", "vmap"))


def _check_seed_dir(seed_dir: Path, record: dict[str, Any], force: bool) -> None:
    """Refuse a seed folder that is not this run's (with `force`: one that `--force` may not delete)."""
    if force:
        if seed_dir.exists() and any(not is_temp(p) for p in seed_dir.iterdir()):
            try:
                existing = read_json(seed_dir / "config.json")
            except (OSError, ValueError):
                existing = None
            if not isinstance(existing, dict) or not _owned(existing, record):
                raise WorkbenchError(f"{seed_dir} holds a different run", "choose another --out or move that folder away")
        return
    existing = _read_record(seed_dir)
    if existing is not None:
        if not _owned(existing, record) or existing.get("seed") != record["seed"]:
            raise WorkbenchError(f"{seed_dir} holds a different run", "choose another --out or move that folder away")
    elif seed_dir.exists() and any(not is_temp(p) for p in seed_dir.iterdir()):  # a kill can leave a temp file
        raise WorkbenchError(f"{seed_dir} exists and is not a workbench run", "choose another --out or move it away")


def _prepare_seed_dir(seed_dir: Path, record: dict[str, Any], force: bool) -> None:
    if force and seed_dir.exists():
        shutil.rmtree(seed_dir)  # `_check_seed_dir` made sure it is a folder of this run
    if not (seed_dir / "config.json").exists():
        write_json_atomic(seed_dir / "config.json", record)


def _status(seed_dir: Path) -> str | None:
    try:
        summary = read_json(seed_dir / "summary.json")
    except (OSError, ValueError):
        return None
    return summary.get("status") if isinstance(summary, dict) else None


def command_line(name: str, preset: str, seeds: list[int], overrides: list[str], vmap: bool = False) -> str:
    seed_text = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ",".join(map(str, seeds))
    sets = "".join(f" --set {o}" for o in overrides)
    limit = f" --max-seeds {len(seeds)}" if len(seeds) > MAX_SEEDS else ""
    return f"wb run {name} --preset {preset} --seeds {seed_text}{limit}{' --vmap' if vmap else ''}{sets}"


def run_experiment(name: str, *, preset: str = "quick", seeds: list[int] | None = None,
                   overrides: list[str] | None = None, out: Path = Path("runs"), vmap: bool = False,
                   force: bool = False) -> GroupSummary:
    """Run (or resume) every seed, analyse them, and return the group summary with aggregated checks."""
    experiment = load_experiment(name)
    seeds = [0] if seeds is None else seeds
    overrides = list(overrides or [])
    config = make_config(experiment, preset, overrides)
    digest = config_hash(config)
    group = group_dir(out, name, digest, vmap)
    record = {"experiment": name, "config_hash": digest, "config": config_to_dict(config), "vmap": vmap}
    runs = [SeedRun(s, group / f"seed-{s}") for s in seeds]
    for run in runs:  # every seed folder is checked before anything is written
        _check_seed_dir(run.dir, {**record, "seed": run.seed}, force)
    _check_out(group)
    remove_stale_temps(group)  # what a killed atomic write left behind
    for run in runs:
        _prepare_seed_dir(run.dir, {**record, "seed": run.seed}, force)
    todo = [run for run in runs if _status(run.dir) != "complete"]
    if todo:
        _run_seeds(experiment, config, preset, todo, record, vmap=vmap)
    return analyse_group(experiment, name, config, preset, seeds, overrides, group, vmap=vmap)


def _seed_summary(record: dict[str, Any], run: SeedRun, status: str, **fields: Any) -> SeedSummary:
    return SeedSummary(record["experiment"], record["config_hash"], record["config"], run.seed, status,
                       vmap=record["vmap"], **fields)


def _run_seeds(experiment: Experiment, config: Any, preset: str, todo: list[SeedRun], record: dict[str, Any], *,
               vmap: bool) -> None:
    """Train the unfinished seeds and write each one's `summary.json` (running, then complete or failed)."""
    started = time.time()
    for run in todo:  # a resumed seed keeps its previous summary until it completes or fails
        if not (run.dir / "summary.json").exists():
            write_json_atomic(run.dir / "summary.json", _seed_summary(record, run, "running").to_dict())
    try:
        results = experiment.run(config, todo, vmap=vmap)
    except TrainingDiverged as e:
        for run in todo:
            failed = run.seed in e.seeds
            error = str(e) if failed else f"stopped because another seed diverged: {e}"
            summary = _seed_summary(record, run, "failed" if failed else "interrupted", error=error)
            write_json_atomic(run.dir / "summary.json", summary.to_dict())
        raise
    if len(results) != len(todo):
        raise RuntimeError(f"{record['experiment']}: run returned checks for {len(results)} of {len(todo)} seeds")
    wall = time.time() - started
    for run, checks in zip(todo, results):
        summary = _seed_summary(record, run, "complete", preset=preset, checks=tuple(checks), wall_s=wall / len(todo))
        write_json_atomic(run.dir / "summary.json", summary.to_dict())


def analyse_group(experiment: Experiment, name: str, config: Any, preset: str, seeds: list[int],
                  overrides: list[str], group: Path, *, vmap: bool = False) -> GroupSummary:
    """Analyse a group whose seeds are complete; write its figures and `summary.json`."""
    runs = [SeedRun(s, group / f"seed-{s}") for s in seeds]
    seed_summaries = [SeedSummary.from_dict(read_json(run.dir / "summary.json")) for run in runs]
    analysis = experiment.analyse(config, runs)
    for fig_name, fig in analysis.figures.items():
        write_json_atomic(group / "figures" / f"{fig_name}.json", fig)
    summary = GroupSummary(
        experiment=name, title=experiment.title, paper=experiment.paper, claim=experiment.claim, preset=preset,
        seeds=tuple(seeds), config_hash=config_hash(config), config=config_to_dict(config),
        command=command_line(name, preset, seeds, overrides, vmap),
        checks=tuple(aggregate_checks([s.checks for s in seed_summaries])),
        markdown=analysis.markdown, figures=tuple(analysis.figures), captions=analysis.captions,
        runs=tuple(seed_summaries), analysed_at=time.time(), commit=git_commit(REPO), vmap=vmap,
    )  # fmt: skip
    write_json_atomic(group / "summary.json", summary.to_dict())
    return summary
