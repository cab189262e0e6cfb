"""Transformers as SVMs (Tarzanagh et al. 2023): normalised GD on one-layer attention converges in
direction to the Att-SVM solution (Frobenius for W, nuclear norm for (K, Q)); the SVM ranks.

An outer seed (`--seeds`) is one full reproduction; its instances are `fold_in(stream, i)` of the
named streams `converge` and `rank n=.. T=.. d=..` (one per grid cell) of the outer seed.
Everything runs in float64 (as the authors' notebooks), all instances in one vmapped call.
"""

import dataclasses
import itertools

import jax
import numpy as np
import plotly.graph_objects as go

from workbench.core import Check
from workbench.core.errors import TrainingDiverged
from workbench.core.results import Analysis
from workbench.core.validate import check_int, parse_positive_list
from workbench.kernels.attention_svm import correlation, optimal_tokens, sample_svm_data, simulate_ngd
from workbench.kernels.svm_solver import matrix_rank, solve_att_svm

from ._base import Experiment, SeedRun

TITLE = "Transformers as support vector machines"
PAPER = "Tarzanagh, Li, Thrampoulidis, Oymak 2023, *Transformers as Support Vector Machines* (arXiv 2308.16898)"
CLAIM = (
    "Normalised gradient descent on a one-layer attention model with a linear head converges in direction "
    "to the max-margin token-separating Att-SVM solution W^mm built on the tokens it selects (possibly only "
    "locally optimal): Frobenius norm for the W-parametrisation, nuclear norm for (K, Q). The softmax "
    "saturates (max probability → 1). rank(W^mm) ≤ min(n, d), and the nuclear-norm solution has lower rank."
)


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 6
    T: int = 8
    d: int = 10
    instances: int = 100
    steps: int = 2000
    lr: float = 0.1
    record_every: int = 10
    rank_n: str = "5,10,15"
    rank_T: str = "5,10,15"
    rank_d: str = "1,2,3,4,5,10,15,20"
    rank_instances: int = 100
    rank_pool: int = 400

    def __post_init__(self):
        for name in ("n", "d", "instances", "steps", "record_every", "rank_instances", "rank_pool"):
            check_int("attention-svm", name, getattr(self, name))
        if self.T < 2 or self.lr <= 0 or self.steps % self.record_every:
            raise ValueError("need T >= 2, lr > 0 and steps divisible by record_every")
        self.rank_cells()  # parses the three lists

    def rank_cells(self) -> list["RankCell"]:
        """The `svm_rank` grid: every d for (n, T) pairs with n = first or T = first."""
        ns, Ts, ds = (parse_positive_list("attention-svm", f"rank_{a}", getattr(self, f"rank_{a}"), int)
                      for a in ("n", "T", "d"))
        pairs = [(n, T) for n in ns for T in Ts if n == ns[0] or T == Ts[0]]
        return [RankCell(n, T, d) for (n, T), d in itertools.product(pairs, ds)]


@dataclasses.dataclass(frozen=True)
class RankCell:
    n: int
    T: int
    d: int

    @property
    def stream(self) -> str:
        """The name of this cell's key stream."""
        return f"rank n={self.n} T={self.T} d={self.d}"


@dataclasses.dataclass(frozen=True)
class RankRow:
    """The SVM ranks of one grid cell over its feasible instances (`nuc_feasible`: per instance)."""

    cell: RankCell
    feasible: int
    rank_fro: tuple[int, ...]
    rank_nuc: tuple[int, ...]
    nuc_feasible: tuple[bool, ...]

    def to_dict(self) -> dict:
        return {"n": self.cell.n, "T": self.cell.T, "d": self.cell.d, "feasible": self.feasible,
                "rank_fro": list(self.rank_fro), "rank_nuc": list(self.rank_nuc), "nuc_feasible": list(self.nuc_feasible)}

    @classmethod
    def from_dict(cls, r: dict) -> "RankRow":
        return cls(RankCell(r["n"], r["T"], r["d"]), r["feasible"], tuple(r["rank_fro"]), tuple(r["rank_nuc"]),
                   tuple(r["nuc_feasible"]))


PRESETS = {
    "quick": Config(instances=16, steps=500, rank_n="5", rank_T="5", rank_d="2,5,10", rank_instances=10, rank_pool=60),
    "default": Config(rank_d="1,2,5,10,20", rank_instances=50),
    "paper": Config(),
}


def run_local_converge(config: Config, run: SeedRun, param: str) -> dict:
    """`local_converge`: NGD from the default init, SVM on the tokens GD selected."""
    norm = "fro" if param == "W" else "nuc"
    with jax.enable_x64(True):
        fn = jax.jit(jax.vmap(lambda k: simulate_ngd(k, config.n, config.T, config.d, param=param, steps=config.steps,
                                                     lr=config.lr, record_every=config.record_every)))
        data, trace = fn(run.keys("converge", config.instances))
        if not np.isfinite(np.asarray(trace.loss)).all():
            raise TrainingDiverged(f"attention-svm ({param}): loss not finite", step=-1, seeds=[run.seed])
        sols = {k: solve_att_svm(data.X, data.z, trace.selected, norm=k) for k in ("fro", "nuc")}
        corr = {k: np.asarray(jax.vmap(correlation)(trace.W, s.W)) for k, s in sols.items()}
        local = np.asarray(trace.selected != jax.vmap(optimal_tokens)(data)).any(-1)
    return {"param": param, "norm": norm, "corr": corr, "max_prob": np.asarray(trace.max_prob),
            "feasible": np.asarray(sols[norm].feasible), "min_margin": np.asarray(sols[norm].min_margin), "local": local}


def run_rank_cell(config: Config, run: SeedRun, cell: RankCell) -> RankRow:
    """`svm_rank` in one cell: SVMs on the globally optimal tokens of its first feasible instances."""
    with jax.enable_x64(True):
        sample = jax.jit(jax.vmap(lambda k: sample_svm_data(k, cell.n, cell.T, cell.d)))
        data = sample(run.keys(cell.stream, config.rank_pool))
        ids = jax.vmap(optimal_tokens)(data)
        fro = solve_att_svm(data.X, data.z, ids, norm="fro")
        keep = np.flatnonzero(np.asarray(fro.feasible))[: config.rank_instances]
        nuc = solve_att_svm(data.X[keep], data.z[keep], ids[keep], norm="nuc")
        r_fro = np.asarray(jax.vmap(matrix_rank)(fro.W[keep]))
        r_nuc = np.asarray(jax.vmap(matrix_rank)(nuc.W))
    return RankRow(cell, len(keep), tuple(r_fro.tolist()), tuple(r_nuc.tolist()), tuple(np.asarray(nuc.feasible).tolist()))


def _checks(config: Config, results: list[dict], rank_rows: list[RankRow]) -> list[Check]:
    checks = []
    for r in results:
        c = r["corr"][r["norm"]][:, -1]
        checks.append(Check(f"corr_{r['param']}_vs_{r['norm']}_svm", 1.0, float(c.mean()), 0.05,
                            f"mean over {config.instances} instances of corr(W(t), W^mm_{r['norm']}) at t = {config.steps}",
                            one_sided=True))
        checks.append(Check(f"max_softmax_prob_{r['param']}", 1.0, float(r["max_prob"][:, -1].mean()), 0.01,
                            "mean max softmax probability at the final W", one_sided=True))
        checks.append(Check(f"svm_feasible_{r['param']}", 1.0, float(r["feasible"].mean()), 0.0,
                            "fraction of instances whose Att-SVM on the selected tokens was solved to 1e-6", one_sided=True))
    bound = [rf <= min(row.cell.n, row.cell.d) for row in rank_rows for rf in row.rank_fro]
    order = [rn <= rf for row in rank_rows for rf, rn in zip(row.rank_fro, row.rank_nuc)]
    if bound:
        checks.append(Check("rank_fro_le_min_n_d", 1.0, float(np.mean(bound)), 0.0,
                            "fraction of feasible grid instances with rank(W^mm) <= min(n, d) (tol 1e-7)", one_sided=True))
        checks.append(Check("rank_nuc_le_rank_fro", 1.0, float(np.mean(order)), 0.0,
                            "fraction of feasible grid instances with rank(W^mm_nuc) <= rank(W^mm_fro)", one_sided=True))
    return checks


def _corr_figure(config: Config, summary: dict) -> go.Figure:
    steps = np.arange(config.record_every, config.steps + 1, config.record_every)
    fig = go.Figure()
    for i, (param, k) in enumerate([("W", "fro"), ("W", "nuc"), ("KQ", "nuc"), ("KQ", "fro")]):
        m, s = np.array(summary[param]["corr_mean"][k]), np.array(summary[param]["corr_std"][k])
        dash = None if (param, k) in (("W", "fro"), ("KQ", "nuc")) else "dot"
        fig.add_scatter(x=steps, y=m, name=f"{param}-param vs W^mm ({k})", line=dict(dash=dash),
                        error_y=dict(array=s, visible=False))
    fig.update_layout(xaxis_title="iteration", yaxis_title="correlation with the Att-SVM solution", yaxis_range=[0, 1.05])
    return fig


def _rank_figure(rows: list[RankRow]) -> go.Figure:
    fig = go.Figure()
    for (n, T) in sorted({(r.cell.n, r.cell.T) for r in rows}):
        sel = [r for r in rows if (r.cell.n, r.cell.T) == (n, T) and r.feasible]
        for key, dash in (("rank_fro", None), ("rank_nuc", "dash")):
            fig.add_scatter(x=[r.cell.d for r in sel], y=[np.mean(getattr(r, key)) for r in sel], line=dict(dash=dash),
                            name=f"n={n}, T={T}, {'Frobenius' if key == 'rank_fro' else 'nuclear'}")
    fig.update_layout(xaxis_title="d", yaxis_title="mean rank of the SVM solution (tol 1e-7)")
    return fig


class AttentionSvm(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_seed(self, config: Config, run: SeedRun) -> list[Check]:
        """One outer seed: all its instances in one call per parametrisation (always vmapped), then the grid."""
        results = [run_local_converge(config, run, p) for p in ("W", "KQ")]
        rank_rows = [run_rank_cell(config, run, cell) for cell in config.rank_cells()]
        for i, t in enumerate(range(config.record_every, config.steps + 1, config.record_every)):
            run.log.log(t, "train", {f"corr_{r['param']}_{k}": float(r["corr"][k][:, i].mean()) for r in results for k in r["corr"]})
        summary = {r["param"]: {"corr_mean": {k: r["corr"][k].mean(0).tolist() for k in r["corr"]},
                                "corr_std": {k: r["corr"][k].std(0).tolist() for k in r["corr"]},
                                "max_prob_mean": r["max_prob"].mean(0).tolist(),
                                "local_fraction": float(r["local"].mean())} for r in results}
        run.write_json("curves", summary)
        run.write_json("rank_grid", [row.to_dict() for row in rank_rows])
        run.write_figure("correlation", _corr_figure(config, summary))
        run.write_figure("rank", _rank_figure(rank_rows))
        return _checks(config, results, rank_rows)

    def analyse(self, config: Config, runs: list[SeedRun]) -> Analysis:
        first = runs[0]
        figures = {n: first.read_figure(n) for n in ("correlation", "rank")}
        rows = [RankRow.from_dict(r) for r in first.read_json("rank_grid")]
        curves = first.read_json("curves")
        lines = ["| n | T | d | feasible | mean rank (Frobenius) | mean rank (nuclear) |", "|---|---|---|---|---|---|"]
        for r in rows:
            fro = f"{np.mean(r.rank_fro):.2f}" if r.feasible else "–"
            nuc = f"{np.mean(r.rank_nuc):.2f}" if r.feasible else "–"
            lines.append(f"| {r.cell.n} | {r.cell.T} | {r.cell.d} | {r.feasible} | {fro} | {nuc} |")
        local = ", ".join(f"{p}: {c['local_fraction']:.2f}" for p, c in curves.items())
        md = ("## Rank grid\n\n" + "\n".join(lines) + "\n\n"
              f"Fraction of `local_converge` instances where GD selected a locally (not globally) optimal token: {local}.\n")
        captions = {"correlation": "Solid: each parametrisation against its own SVM (Frobenius for W, nuclear for (K, Q)); "
                                   "dotted: against the other one.",
                    "rank": "Ranks of the SVM solutions over the feasible instances of each cell."}
        return Analysis(figures=figures, markdown=md, captions=captions)


EXPERIMENT = AttentionSvm()
