"""Every bad input of the reliability issue: exit code 2, one line on stderr naming the fix, no
traceback, and the folders it met unchanged (a malformed group met by `wb report` is named and skipped,
the other pages still written)."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from workbench.run.runner import MAX_SEEDS, group_dir, parse_seeds, run_experiment

TINY = ["steps=10", "batch_size=16", "eval_size=32", "eta_prompts=32", "ckpt_every=5", "log_every=5", "eval_every=5"]
TINY_ARGS = [a for o in TINY for a in ("--set", o)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A finished tiny run, and one of the same shapes with another `lr` (its checkpoints are foreign)."""
    runs = tmp_path_factory.mktemp("runs")
    ours = run_experiment("icl-gd", seeds=[0], overrides=TINY, out=runs).to_dict()  # the JSON of `wb run --json`
    other = run_experiment("icl-gd", seeds=[0], overrides=[*TINY, "lr=0.002"],
                           out=tmp_path_factory.mktemp("other")).to_dict()
    other["out"] = next(Path(tmp_path_factory.getbasetemp()).glob("other*"))
    return runs, ours, other


@pytest.fixture
def runs(finished, tmp_path) -> Path:
    """A private copy of the finished run folder."""
    shutil.copytree(finished[0], tmp_path / "runs")
    return tmp_path / "runs"


def seed_dir(runs: Path, summary: dict) -> Path:
    return group_dir(runs, "icl-gd", summary["config_hash"], False) / "seed-0"


def mark_killed(seed: Path) -> None:
    summary = json.loads((seed / "summary.json").read_text())
    (seed / "summary.json").write_text(json.dumps({**summary, "status": "running"}))


def test_out_is_a_regular_file(wb, one_line_error, digest, tmp_path):
    target = tmp_path / "file"
    target.write_text("mine")
    one_line_error(wb(["run", "icl-gd", "--out", str(target)]),
                   "cannot create the run folder", "--out")
    assert target.read_text() == "mine" and digest(tmp_path) == {"file": hashlib.sha256(b"mine").hexdigest()}


def test_out_cannot_be_created(wb, one_line_error):
    one_line_error(wb(["run", "icl-gd", "--out", "/proc/x"]),
                   "cannot create the run folder /proc/x", "--out")


def test_a_huge_seed_range_is_refused_before_anything_is_written(wb, one_line_error, tmp_path):
    one_line_error(wb(["run", "icl-gd", "--seeds", "0-100000", "--out", str(tmp_path)]),
                   "100001 seeds", f"limit of {MAX_SEEDS}", "--max-seeds 100001")
    one_line_error(wb(["run", "icl-gd", "--seeds", "0-2,7", "--max-seeds", "3", "--out", str(tmp_path)]), "4 seeds", "--max-seeds 4")
    assert not any(tmp_path.iterdir())
    assert parse_seeds("0-149", max_seeds=150) == list(range(150))  # the flag lifts the limit


def test_a_foreign_checkpoint_is_refused_naming_both_runs(wb, one_line_error, digest, finished, runs):
    _, ours, other = finished
    seed = seed_dir(runs, ours)
    mark_killed(seed)
    foreign = seed_dir(other["out"], other) / "checkpoints"
    for path in foreign.glob("step-00000010.*"):
        shutil.copyfile(path, seed / "checkpoints" / path.name)
    before = digest(runs)
    line = one_line_error(wb(["run", "icl-gd", "--out", str(runs), *TINY_ARGS]),
                          "belongs to another run", "--force")
    assert f"config_hash {other['config_hash']}" in line and f"config_hash {ours['config_hash']}" in line
    assert "seed 0" in line
    assert digest(runs) == before


def test_a_hand_edited_config_json_is_refused(wb, one_line_error, digest, finished, runs):
    seed = seed_dir(runs, finished[1])
    record = json.loads((seed / "config.json").read_text())
    record["config"]["lr"] = 0.5  # hash kept
    (seed / "config.json").write_text(json.dumps(record))
    before = digest(runs)
    one_line_error(wb(["run", "icl-gd", "--out", str(runs), *TINY_ARGS]),
                   "was edited", record["config_hash"], "--force")
    assert digest(runs) == before


def test_show_on_a_summary_whose_checks_lack_a_field(wb, one_line_error, digest, finished, runs):
    seed = seed_dir(runs, finished[1])
    summary = json.loads((seed / "summary.json").read_text())
    del summary["checks"][1]["ours"]
    (seed / "summary.json").write_text(json.dumps(summary))
    before = digest(runs)
    one_line_error(wb(["show", str(seed)]), "lacks 'ours'", "summary.json")
    assert digest(runs) == before


def _second_group(runs: Path, summary: dict) -> Path:
    """A newer copy of the group under another name, which `wb report` would prefer."""
    group = group_dir(runs, "icl-gd", summary["config_hash"], False)
    newer = group.with_name("0000000000")
    shutil.copytree(group, newer)
    data = json.loads((newer / "summary.json").read_text())
    (newer / "summary.json").write_text(json.dumps({**data, "analysed_at": data["analysed_at"] + 1}))
    return newer


@pytest.mark.parametrize("damage, fragment", [
    (lambda g: _edit_summary(g, lambda s: s.pop("checks")), "summary.json lacks checks"),
    (lambda g: (g / "figures" / "loss.json").unlink(), "cannot read loss.json"),
    (lambda g: (g / "summary.json").write_text("{torn"), "summary.json is not valid JSON"),
], ids=["no checks", "missing figure", "torn summary"])
def test_report_names_and_skips_a_malformed_group(wb, one_line_error, digest, damage, fragment, finished, runs, tmp_path):
    newer = _second_group(runs, finished[1])
    damage(newer)
    before = digest(runs)
    docs = tmp_path / "docs"
    result = wb(["report", "--runs", str(runs), "--docs", str(docs), "--no-build"])
    one_line_error(result, f"skipped {newer}", fragment)
    assert digest(runs) == before
    page = (docs / "results" / "icl-gd.md").read_text()  # written from the good group
    assert finished[1]["config_hash"] in page and "1 result page(s)" in result[1]


def _edit_summary(group: Path, edit) -> None:
    data = json.loads((group / "summary.json").read_text())
    edit(data)
    (group / "summary.json").write_text(json.dumps(data))


def test_a_vmapped_group_is_its_own_run_and_says_so(finished, runs):
    summary = run_experiment("icl-gd", seeds=[0], overrides=TINY, out=runs, vmap=True).to_dict()
    group = group_dir(runs, "icl-gd", summary["config_hash"], True)
    assert group.name.endswith("-vmap") and group != group_dir(runs, "icl-gd", summary["config_hash"], False)
    assert summary["vmap"] and "--vmap" in summary["command"]
    assert json.loads((group / "seed-0" / "config.json").read_text())["vmap"] is True
    assert json.loads((group / "seed-0" / "summary.json").read_text())["vmap"] is True
    sidecar = json.loads(next((group / "seed-0" / "checkpoints").glob("*.json")).read_text())
    assert (sidecar["config_hash"], sidecar["seed"], sidecar["vmap"]) == (summary["config_hash"], 0, True)
    assert not finished[1]["vmap"] and "--vmap" not in finished[1]["command"]


def test_an_error_inside_an_experiment_module_is_not_reported_as_unknown(monkeypatch):
    """A ValueError raised while importing an experiment (its presets failing validation, say) surfaces as
    itself; only a name that no module has is an unknown experiment."""
    from workbench import experiments
    from workbench.core.errors import WorkbenchError
    from workbench.run import runner

    def broken(name):
        raise ValueError("icl-x: n_probe (10) must be >= d (20)")

    monkeypatch.setattr(experiments, "load", broken)
    with pytest.raises(ValueError, match="n_probe"):
        runner.load_experiment("icl-gd")
    monkeypatch.undo()
    with pytest.raises(WorkbenchError, match="unknown experiment"):
        runner.load_experiment("icl-nothing")
