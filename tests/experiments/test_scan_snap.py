"""The scan-snap experiment on a tiny config: run, analyse, and the checks that hold at any scale."""

import math

from workbench.experiments import SeedRun
from workbench.experiments import scan_snap as exp

TINY = exp.Config(fig4_seeds=2, fig4_steps=11, fig6_seeds=2, fig6_steps=10, fig6_num_last="1", fig6_lr_z="1,2",
                  fig6_ratio="1,2", freeze_steps=101, batch_size=8, seq_len=16)


def test_scan_snap_runs_and_analyses(tmp_path):
    runs = [SeedRun(0, tmp_path / "seed-0"), SeedRun(1, tmp_path / "seed-1")]
    per_seed = exp.EXPERIMENT.run(TINY, runs)
    assert [[c.name for c in checks] for checks in per_seed][0] == [c.name for c in per_seed[1]]
    checks = {c.name: c for c in per_seed[0]}
    assert abs(checks["fig4_loss_it0"].ours - math.log(34)) < 1e-4  # zero init: uniform over M = 34 tokens
    assert {"fig6_entropy_last1_lrz1_ratio1", "fig6_entropy_last1_lrz2_ratio2"} <= set(checks)
    assert per_seed[0][1].ours != per_seed[1][1].ours  # the outer seeds draw different inner seeds
    analysis = exp.EXPERIMENT.analyse(TINY, runs)
    assert set(analysis.figures) == {"fig4_loss", "fig4_attention", "snap", "fig6_entropy"}
    assert "| 1 | 1 | 1 |" in analysis.markdown and "1.871 ± 0.052" in analysis.markdown
    steps, loss = runs[0].curve("fig4", "loss")
    assert list(steps) == list(range(11)) and loss[0] > loss[-1]
