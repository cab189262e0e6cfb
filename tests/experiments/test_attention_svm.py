"""The attention-svm experiment on a tiny config: run, analyse, typed rank rows."""

from workbench.experiments import SeedRun
from workbench.experiments import attention_svm as exp

TINY = exp.Config(n=3, T=4, d=4, instances=4, steps=40, record_every=10, rank_n="3", rank_T="3", rank_d="2,4",
                  rank_instances=3, rank_pool=12)


def test_attention_svm_runs_and_analyses(tmp_path):
    run = SeedRun(0, tmp_path)
    [checks] = exp.EXPERIMENT.run(TINY, [run])
    names = [c.name for c in checks]
    assert names[:3] == ["corr_W_vs_fro_svm", "max_softmax_prob_W", "svm_feasible_W"]
    assert {"rank_fro_le_min_n_d", "rank_nuc_le_rank_fro"} <= set(names)
    assert all(0.0 <= c.ours <= 1.0 for c in checks if c.name.startswith(("svm_feasible", "rank_")))
    rows = [exp.RankRow.from_dict(r) for r in run.read_json("rank_grid")]
    assert [r.cell for r in rows] == TINY.rank_cells() == [exp.RankCell(3, 3, 2), exp.RankCell(3, 3, 4)]
    assert all(len(r.rank_fro) == r.feasible == len(r.rank_nuc) for r in rows)
    analysis = exp.EXPERIMENT.analyse(TINY, [run])
    assert set(analysis.figures) == {"correlation", "rank"}
    assert "| 3 | 3 | 4 |" in analysis.markdown
    steps, corr = run.curve("train", "corr_W_fro")
    assert list(steps) == [10, 20, 30, 40] and len(corr) == 4
