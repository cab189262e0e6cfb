"""Bad input to `wb`: one line on stderr naming the fix, exit code 2, no traceback, nothing overwritten."""

import json
from pathlib import Path

import pytest

TINY = ["--set", "steps=10", "--set", "batch_size=16", "--set", "eval_size=32", "--set", "eta_prompts=32",
        "--set", "ckpt_every=5", "--set", "log_every=5", "--set", "eval_every=5"]


@pytest.mark.parametrize("args,fragments", [
    (["run", "icl-dg"], ["unknown experiment", "icl-gd"]),
    (["run", "icl-gd", "--set", "stepz=3"], ["unknown key", "known keys"]),
    (["run", "icl-gd", "--set", "steps=many"], ["expected int", "--set steps=3"]),
    (["run", "icl-gd", "--set", "lr_schedule=linear"], ["must be one of"]),
    (["run", "icl-gd", "--set", "steps"], ["key=value"]),
    (["run", "icl-gd", "--set", "steps=0"], ["icl-gd.steps must be an integer >= 1"]),
    (["run", "icl-gd", "--seeds", "4-1"], ["bad seed range", "--seeds 0-4"]),
    (["run", "icl-gd", "--seeds", "a"], ["bad seed range"]),
    (["run", "icl-gd", "--preset", "huge"], ["unknown preset", "quick"]),
    (["run", "icl-gd", "--bogus"], ["No such option"]),
    (["bench", "nothing-here"], ["unknown benchmark"]),
])
def test_bad_input_is_one_line_with_exit_code_2(wb, one_line_error, args, fragments, tmp_path):
    one_line_error(wb([*args, *(["--out", str(tmp_path)] if args[0] == "run" else [])]),
                   *fragments)
    assert not any(tmp_path.iterdir())


def test_show_rejects_missing_and_foreign_folders(wb, one_line_error, tmp_path):
    one_line_error(wb(["show", str(tmp_path / "nope")]), "not a folder")
    (tmp_path / "summary.json").write_text("{not json")
    one_line_error(wb(["show", str(tmp_path)]), "not a workbench run folder")


def test_run_json_show_and_corrupted_checkpoint(wb, one_line_error, digest, tmp_path):
    code, out, err = wb(["run", "icl-gd", "--seeds", "0", "--out", str(tmp_path), "--json", *TINY])
    assert code == 0, err
    summary = json.loads(out)
    assert {"name", "paper", "ours", "tolerance", "pass"} <= set(summary["checks"][0])
    seed_dir = tmp_path / "icl-gd" / summary["config_hash"] / "seed-0"
    code, out, _ = wb(["show", str(seed_dir)])
    assert code == 0 and "status: complete" in out

    # Pretend the run was killed, then damage its newest checkpoint: resuming must refuse, touching nothing.
    seed_summary = json.loads((seed_dir / "summary.json").read_text())
    (seed_dir / "summary.json").write_text(json.dumps({**seed_summary, "status": "running"}))
    newest = sorted((seed_dir / "checkpoints").glob("*.eqx"))[-1]
    newest.write_bytes(newest.read_bytes()[:-7] + b"garbage")
    before = digest(tmp_path)
    result = wb(["run", "icl-gd", "--seeds", "0", "--out", str(tmp_path), *TINY])
    one_line_error(result, "corrupted", "--force")
    assert digest(tmp_path) == before


def test_a_folder_that_is_not_a_run_is_not_overwritten(wb, one_line_error, digest, tmp_path):
    code, out, _ = wb(["run", "icl-gd", "--out", str(tmp_path), "--json", *TINY])
    seed_dir = tmp_path / "icl-gd" / json.loads(out)["config_hash"] / "seed-0"
    (seed_dir / "config.json").write_text(json.dumps({"experiment": "other", "config_hash": "x"}))
    before = digest(tmp_path)
    one_line_error(wb(["run", "icl-gd", "--out", str(tmp_path), "--force", *TINY]),
                   "holds a different run")
    assert digest(tmp_path) == before


def test_divergence_marks_the_run_failed(wb, tmp_path):
    code, _, err = wb(["run", "icl-gd", "--out", str(tmp_path), *TINY, "--set", "lr=1e30", "--set", "clip=1e30"])
    assert code == 1 and "diverged" in err and "Traceback" not in err
    summary = json.loads(next(tmp_path.rglob("seed-0/summary.json")).read_text())
    assert summary["status"] == "failed" and "no checkpoint was written yet" in summary["error"]


def test_list_names_the_experiment(wb):
    code, out, _ = wb(["list"])
    assert code == 0 and "icl-gd" in out
