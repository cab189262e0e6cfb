"""Scan and Snap (Tian et al. 2023): the reduced Y/Z model's loss log (Fig. 4), attention over time,
and the entropy sweep (Fig. 6), every inner seed and grid cell simulated in one vmapped call.

An outer seed (`--seeds`) is one full reproduction; its inner seeds (`fig4_seeds`, `fig6_seeds`)
are the paper's seeds, drawn as `fold_in(stream, i)` from the named streams `fig4`, `fig6` and
`freeze` of the outer seed.
"""

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from workbench.core import Check
from workbench.core.errors import TrainingDiverged
from workbench.core.results import Analysis
from workbench.core.validate import check_int, parse_positive_list
from workbench.kernels.scan_snap import Dataset2, simulate_batch
from workbench.kernels.scan_snap_reduced import simulate_reduced

from . import _scan_snap_figures as figures
from ._base import Experiment, SeedRun

TITLE = "Scan and Snap: attention dynamics of a one-layer transformer"
PAPER = "Tian, Wang, Chen, Du 2023, *Scan and Snap: Understanding Training Dynamics and Token Composition in 1-layer Transformer* (NeurIPS)"
CLAIM = (
    "Trained by SGD with separate rates for the decoder (η_Y) and the attention (η_Z), attention first "
    "**scans**: it moves from the common tokens to the distinct tokens of each class, favouring the "
    "more frequent ones; then it **snaps**: the logits stop growing and the token mix freezes. A larger "
    "η_Z freezes at sparser attention (lower entropy of c_n); a larger η_Y/η_Z freezes earlier, at higher "
    "entropy. The authors' Fig. 4 log and Fig. 6 table (decoded from their `figure_6_data.pkl`) are the targets."
)

# Authors' scan_snap/figure_4.log (seed 2): loss at iterations 0, 2, ..., 10.
FIG4_LOG = {0: 3.526359796524048, 2: 2.3679099082946777, 4: 0.733475387096405, 6: 0.16080491244792938,
            8: 0.04442878067493439, 10: 0.012952473945915699}
# Authors' figure_6_data.pkl, num_last = 1 row: (lr_z, eta_Y/eta_Z) -> (mean, std) over 10 seeds.
FIG6_NUM_LAST_1 = {
    (0.5, 1): (1.971, 0.028), (0.5, 2): (2.007, 0.032), (0.5, 5): (2.066, 0.017), (0.5, 10): (2.092, 0.016),
    (1.0, 1): (1.871, 0.052), (1.0, 2): (1.937, 0.052), (1.0, 5): (2.022, 0.036), (1.0, 10): (2.053, 0.030),
    (2.0, 1): (1.699, 0.101), (2.0, 2): (1.810, 0.099), (2.0, 5): (1.934, 0.068), (2.0, 10): (1.900, 0.200),
    (3.0, 1): (1.551, 0.155), (3.0, 2): (1.708, 0.152), (3.0, 5): (1.786, 0.170), (3.0, 10): (1.825, 0.331),
}


@dataclasses.dataclass(frozen=True)
class Config:
    fig4_seeds: int = 10
    fig4_steps: int = 50
    fig6_seeds: int = 10
    fig6_steps: int = 100
    fig6_num_last: str = "1,3,5,10"
    fig6_lr_z: str = "0.5,1,2,3"
    fig6_ratio: str = "1,2,5,10"
    freeze_steps: int = 400
    batch_size: int = 128
    seq_len: int = 128

    def __post_init__(self):
        for name in ("fig4_seeds", "fig4_steps", "fig6_seeds", "fig6_steps", "freeze_steps", "batch_size"):
            check_int("scan-snap", name, getattr(self, name))
        if self.fig4_steps < 11 or self.freeze_steps < 101:
            raise ValueError("fig4_steps must be >= 11 (the log is checked to iteration 10) and freeze_steps >= 101")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {self.seq_len}")
        self.grid()  # parses the three lists

    def grid(self) -> list[tuple[int, float, float]]:
        num_last, lr_z, ratio = (parse_positive_list("scan-snap", name, getattr(self, name), kind)
                                 for name, kind in (("fig6_num_last", int), ("fig6_lr_z", float), ("fig6_ratio", float)))
        return list(itertools.product(num_last, lr_z, ratio))


PRESETS = {
    "quick": Config(fig6_seeds=5, fig6_num_last="1", freeze_steps=200),
    "default": Config(fig6_num_last="1,3"),
    "paper": Config(),
}


def run_fig4(config: Config, run: SeedRun):
    """Fig. 4 config (num_last=2, one next token each, zero init, eta_Y = eta_Z = 1) for every inner seed."""
    data = Dataset2(num_last=2, num_next_per_last=1, seq_len=config.seq_len)
    n = config.fig4_seeds
    return simulate_batch(data, run.keys("fig4", n), jnp.ones(n), jnp.ones(n), jnp.full(n, 2), steps=config.fig4_steps,
                          batch_size=config.batch_size, zero_init=True, record_attention=True)


def run_fig6(config: Config, run: SeedRun):
    """All grid cells x inner seeds in one jitted vmapped call (padded to the largest num_last)."""
    grid = config.grid()
    cells = [(nl, lz, r, s) for nl, lz, r in grid for s in range(config.fig6_seeds)]
    data = Dataset2(num_last=max(c[0] for c in cells), num_next_per_last=2, seq_len=config.seq_len)
    keys = run.keys("fig6", config.fig6_seeds)[jnp.array([c[3] for c in cells])]
    lr_z = jnp.array([c[1] for c in cells], jnp.float32)
    trace = simulate_batch(data, keys, lr_z, lr_z * jnp.array([c[2] for c in cells], jnp.float32),
                           jnp.array([c[0] for c in cells], jnp.int32), steps=config.fig6_steps,
                           batch_size=config.batch_size, zero_init=False)
    final = np.asarray(trace.entropy[:, -1]).reshape(len(grid), config.fig6_seeds)
    return grid, final, np.asarray(trace.loss)


def run_freeze(config: Config):
    """Reduced (L -> infinity) dynamics at the Fig. 4 config, eta_Y/eta_Z = 1 and 10 (the theory overlay).

    Deterministic: zero init, exact gradients (the key is not used)."""
    data = Dataset2(num_last=2, num_next_per_last=1)
    fn = jax.jit(jax.vmap(lambda r: simulate_reduced(data, jax.random.key(0), 1.0, r, steps=config.freeze_steps)))
    return fn(jnp.array([1.0, 10.0]))


def run_freeze_sgd(config: Config, run: SeedRun):
    data = Dataset2(num_last=2, num_next_per_last=1, seq_len=config.seq_len)
    n = config.fig4_seeds
    ratios = jnp.concatenate([jnp.ones(n), jnp.full(n, 10.0)])
    keys = jnp.concatenate([run.keys("freeze", n), run.keys("freeze", n)])
    return simulate_batch(data, keys, jnp.ones(2 * n), ratios, jnp.full(2 * n, 2), steps=config.freeze_steps,
                          batch_size=config.batch_size, zero_init=True)


def _checks(config: Config, fig4, grid, final, freeze_sgd) -> list[Check]:
    loss = np.asarray(fig4.loss)
    checks = [Check("fig4_loss_it0", math.log(34), float(loss[:, 0].mean()), 1e-4,
                    "loss at iteration 0 with zero init = ln M, M = 34")]
    for t in (2, 4, 6, 8, 10):
        paper = FIG4_LOG[t]
        checks.append(Check(f"fig4_loss_it{t}_mean", paper, float(loss[:, t].mean()), 0.05 * paper,
                            f"loss at iteration {t}, mean over {config.fig4_seeds} seeds (tolerance 5%)"))
        worst = float(np.abs(loss[:, t] / paper - 1).max())
        checks.append(Check(f"fig4_loss_it{t}_worst_seed_rel_err", 0.0, worst, 0.15,
                            f"largest relative error of one seed's loss at iteration {t} (tolerance 15%)"))
    ent = np.asarray(freeze_sgd.entropy)
    n = config.fig4_seeds
    for name, rows in (("ratio1", slice(0, n)), ("ratio10", slice(n, 2 * n))):
        dH = float(abs(ent[rows, -1].mean() - ent[rows, 100].mean()))
        checks.append(Check(f"snap_entropy_change_t100_to_end_{name}", 0.0, dH, 0.005,
                            f"|H(t_end) - H(100)| of the distinct-token attention, eta_Y/eta_Z = {name[5:]} (frozen)"))
    means = {cell: final[i].mean() for i, cell in enumerate(grid)}
    for (nl, lz, r), m in means.items():
        if nl == 1 and (lz, r) in FIG6_NUM_LAST_1:
            paper, std = FIG6_NUM_LAST_1[(lz, r)]
            checks.append(Check(f"fig6_entropy_last1_lrz{lz:g}_ratio{r:g}", paper, float(m), max(2 * std, 0.05),
                                f"entropy of c_n on distinct tokens after {config.fig6_steps} steps, mean of "
                                f"{config.fig6_seeds} seeds (tolerance max(2 sigma_paper, 0.05))"))
    checks += _trend_checks(means)
    return checks


def _trend_checks(means: dict) -> list[Check]:
    lzs, rs, nls = (sorted({c[i] for c in means}) for i in (1, 2, 0))
    falls = [means[(nl, a, r)] > means[(nl, b, r)] for nl in nls for r in rs for a, b in zip(lzs, lzs[1:])]
    rises = [means[(1, lz, a)] < means[(1, lz, b)] for lz in lzs for a, b in zip(rs, rs[1:])
             if 1 in nls and not (lz == 2.0 and (a, b) == (5.0, 10.0))]
    out = []
    if falls:
        out.append(Check("fig6_entropy_falls_with_eta_z", 1.0, float(np.mean(falls)), 0.0,
                         "fraction of adjacent eta_Z pairs (every num_last, ratio) where entropy falls", one_sided=True))
    if rises:
        out.append(Check("fig6_entropy_rises_with_ratio_last1", 1.0, float(np.mean(rises)), 0.0,
                         "fraction of adjacent eta_Y/eta_Z pairs (num_last = 1, the paper's lr_z = 2 dip excluded) "
                         "where entropy rises", one_sided=True))
    return out


class ScanSnap(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run(self, config: Config, runs, *, vmap: bool = False) -> list[list[Check]]:
        """Each outer seed runs all its inner seeds in one call per figure (`vmap` is always on inside)."""
        reduced = run_freeze(config)
        return [_run_seed(config, run, reduced) for run in runs]

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs, FIG6_NUM_LAST_1)


def _run_seed(config: Config, run: SeedRun, reduced) -> list[Check]:
    fig4 = run_fig4(config, run)
    grid, final, fig6_loss = run_fig6(config, run)
    freeze_sgd = run_freeze_sgd(config, run)
    if not (np.isfinite(np.asarray(fig4.loss)).all() and np.isfinite(fig6_loss).all()):
        raise TrainingDiverged("scan-snap: a loss stopped being finite", step=-1, seeds=[run.seed])
    mean_loss = np.asarray(fig4.loss).mean(0)
    for t in range(config.fig4_steps):
        run.log.log(t, "fig4", {"loss": mean_loss[t], "entropy": float(np.asarray(fig4.entropy)[:, t].mean())})
    table = [{"num_last": nl, "lr_z": lz, "ratio": r, "mean": float(final[i].mean()),
              "std": float(final[i].std(ddof=1)) if final.shape[1] > 1 else 0.0, "per_seed": final[i].tolist()}
             for i, (nl, lz, r) in enumerate(grid)]
    run.write_json("fig6_table", table)
    figures.write_figures(run, fig4, table, freeze_sgd, reduced, FIG4_LOG, FIG6_NUM_LAST_1)
    return _checks(config, fig4, grid, final, freeze_sgd)


EXPERIMENT = ScanSnap()
