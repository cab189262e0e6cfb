from workbench.experiments import icl_gd
from workbench.run.runner import group_dir


def test_quick_preset_passes_its_checks(quick_icl_gd):
    _, summary = quick_icl_gd
    failing = [(c.name, c.check.ours, c.check.paper, c.check.tolerance) for c in summary.checks if not c.passed]
    assert not failing
    assert {c.name for c in summary.checks} >= {"loss_ratio_to_gd", "prediction_cosine", "sensitivity_cosine",
                                                      "construction_distance"}


def test_group_folder_has_figures_and_seed_folders(quick_icl_gd):
    runs, summary = quick_icl_gd
    group = group_dir(runs, "icl-gd", summary.config_hash, vmap=True)
    assert summary.vmap and "--vmap" in summary.command
    assert sorted(p.name for p in group.glob("seed-*")) == ["seed-0", "seed-1"]
    assert {p.stem for p in (group / "figures").glob("*.json")} == set(summary.figures)
    for seed in ("seed-0", "seed-1"):
        assert (group / seed / "metrics.jsonl").exists() and (group / seed / "checkpoints").is_dir()


def test_presets_are_complete_and_quick_is_small():
    assert set(icl_gd.EXPERIMENT.presets) == {"quick", "default", "paper"}
    paper = icl_gd.EXPERIMENT.presets["paper"]
    assert (paper.d, paper.n_points, paper.batch_size, paper.steps, paper.lr) == (10, 10, 2048, 5000, 1e-3)
    assert icl_gd.EXPERIMENT.presets["quick"].steps * icl_gd.EXPERIMENT.presets["quick"].batch_size < paper.steps * paper.batch_size / 4
