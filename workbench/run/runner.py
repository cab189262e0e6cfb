"""Run experiments into run folders: `<out>/<experiment>/<config-hash>/seed-<s>/`.

A group trained with `vmap` lives in `<config-hash>-vmap/`: vmapped seeds differ from sequential ones
by float32 rounding, so the two are different runs. Each seed folder holds `config.json`, `metrics.jsonl`, `checkpoints/`, `summary.json` (status and
checks) and whatever the experiment writes. The group folder `<config-hash>/` holds the analysis
over seeds: `analysis.json`, `summary.json` (aggregated checks) and `figures/*.json` (plotly).
"""

import dataclasses
import os
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from workbench import experiments
from workbench.core import aggregate_checks, apply_overrides, config_hash, config_to_dict
from workbench.core.errors import TrainingDiverged, WorkbenchError
from workbench.core.config import dict_hash
from workbench.core.io import is_temp, read_json, remove_stale_temps, write_json_atomic

PRESETS = ("quick", "default", "paper")
MAX_SEEDS = 100  # a larger --seeds needs --max-seeds: each seed is a folder and a training run


def load_experiment(name: str) -> ModuleType:
    try:
        return experiments.load(name)
    except ValueError:
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


def make_config(module: ModuleType, preset: str, overrides: list[str]) -> Any:
    if preset not in PRESETS:
        raise WorkbenchError(f"unknown preset {preset!r}", f"choose one of: {', '.join(PRESETS)}")
    try:
        return apply_overrides(module.PRESETS[preset], overrides)
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
                   force: bool = False) -> dict[str, Any]:
    """Run (or resume) every seed, analyse them, and return the group summary with aggregated checks."""
    module = load_experiment(name)
    seeds = [0] if seeds is None else seeds
    overrides = list(overrides or [])
    config = make_config(module, preset, overrides)
    digest = config_hash(config)
    group = group_dir(out, name, digest, vmap)
    record = {"experiment": name, "config_hash": digest, "config": config_to_dict(config), "vmap": vmap}
    seed_dirs = [group / f"seed-{s}" for s in seeds]
    for seed, seed_dir in zip(seeds, seed_dirs):  # every seed folder is checked before anything is written
        _check_seed_dir(seed_dir, {**record, "seed": seed}, force)
    _check_out(group)
    remove_stale_temps(group)  # what a killed atomic write left behind
    for seed, seed_dir in zip(seeds, seed_dirs):
        _prepare_seed_dir(seed_dir, {**record, "seed": seed}, force)
    todo = [i for i, d in enumerate(seed_dirs) if _status(d) != "complete"]
    if todo:
        started = time.time()
        for i in todo:  # a resumed seed keeps its previous summary until it completes or fails
            if not (seed_dirs[i] / "summary.json").exists():
                write_json_atomic(seed_dirs[i] / "summary.json", {**record, "seed": seeds[i], "status": "running"})
        try:
            results = module.run(config, [seeds[i] for i in todo], [seed_dirs[i] for i in todo], vmap=vmap)
        except TrainingDiverged as e:
            for i in todo:
                failed = seeds[i] in e.seeds
                write_json_atomic(seed_dirs[i] / "summary.json", {
                    **record, "seed": seeds[i], "status": "failed" if failed else "interrupted",
                    "error": str(e) if failed else f"stopped because another seed diverged: {e}",
                })
            raise
        wall = time.time() - started
        for i, checks in zip(todo, results):
            write_json_atomic(seed_dirs[i] / "summary.json", {
                **record, "seed": seeds[i], "status": "complete", "preset": preset,
                "checks": [c.to_dict() for c in checks], "wall_s": wall / len(todo),
            })
    return analyse_group(module, name, config, preset, seeds, overrides, group, vmap=vmap)


def analyse_group(module: ModuleType, name: str, config: Any, preset: str, seeds: list[int],
                  overrides: list[str], group: Path, *, vmap: bool = False) -> dict[str, Any]:
    seed_dirs = [group / f"seed-{s}" for s in seeds]
    summaries = [read_json(d / "summary.json") for d in seed_dirs]
    analysis = module.analyse(config, seed_dirs)
    for fig_name, fig in analysis.figures.items():
        write_json_atomic(group / "figures" / f"{fig_name}.json", fig)
    checks = aggregate_checks([s["checks"] for s in summaries])
    summary = {
        "experiment": name, "title": module.TITLE, "paper": module.PAPER, "claim": module.CLAIM,
        "preset": preset, "seeds": seeds, "config_hash": config_hash(config), "config": config_to_dict(config),
        "vmap": vmap, "command": command_line(name, preset, seeds, overrides, vmap), "checks": checks,
        "all_pass": all(c["pass"] for c in checks), "markdown": analysis.markdown,
        "figures": list(analysis.figures), "captions": analysis.captions,
        "runs": [{"seed": s["seed"], "checks": s["checks"], "wall_s": s.get("wall_s")} for s in summaries],
        "analysed_at": time.time(),
    }
    write_json_atomic(group / "summary.json", summary)
    return summary


def describe(module: ModuleType) -> dict[str, Any]:
    return {"title": module.TITLE, "paper": module.PAPER,
            "presets": {k: dataclasses.asdict(v) for k, v in module.PRESETS.items()}}
