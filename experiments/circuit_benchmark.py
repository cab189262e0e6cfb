"""Circuit discovery benchmark: four methods on one graph, scored against compiled ground truths.

For compiled RASP programs (`reverse`, `frac_prevs`, `hist`, `sort`, `sort_unique`, `pair_balance`)
and a 2-layer attention-only model trained on the induction task, every method of
`workbench.interp.circuits` (ACDC, edge attribution patching at the full model and integrated,
edge path patching, CD-T) scores the edges of `Circuit.complete(config)` under each ablation
(zero, mean, resample). The compiled programs run on random inputs of every length (padded) with the
L2 distance to the clean output over the real positions; the induction model on its prompts with
the logit difference at the last position, against a hand-written reference circuit.
"""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.validate import check_int
from workbench.interp import MSE
from workbench.interp import circuits as C
from workbench.models import Circuit, Edge, Node, run_with_cache, sites
from workbench.rasp import compile_program
from workbench.rasp import library as lib
from workbench.rasp.compiler import all_inputs
from workbench.tasks import Induction

from . import _cdt_models as models
from . import _circuit_benchmark_figures as figures
from ._base import Experiment, SeedRun

TITLE = "Circuit discovery: ACDC, edge attribution patching, path patching and CD-T on one graph"
PAPER = "Conmy et al. 2023, *Towards Automated Circuit Discovery for Mechanistic Interpretability* (NeurIPS)"
CLAIM = (
    "ACDC recovers the ground-truth circuits of tracr-compiled programs: with zero ablation and the L2 "
    "metric its edge ROC AUC is 1.000 on `reverse` and on `frac_prevs`. Here all four methods score the "
    "same complete edge graph of the same compiled models, under the same ablations and metric, against "
    "the compiler's ground truth."
)
PROGRAMS = ("reverse", "frac_prevs", "hist", "sort", "sort_unique", "pair_balance")
ACDC_PROGRAMS = ("reverse", "frac_prevs")
METHODS = ("acdc", "eap", "eap_ig", "path_patching", "cdt")
MEAN_REFERENCE = "the task's own prompts (the mean over them of each sender's output, per position)"


@dataclasses.dataclass(frozen=True)
class Config:
    programs: str = ",".join(PROGRAMS)  # comma-separated library programs
    ablations: str = ",".join(C.ABLATIONS)
    prompts: int = 48
    ig_steps: int = 5
    n_symbols: int = 6
    length: int = 12
    d_model: int = 32
    n_heads: int = 4
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3
    induction_prompts: int = 32
    induction: bool = True  # also train the 2-layer induction model and run every method on it

    def __post_init__(self):
        for name in ("prompts", "ig_steps", "n_symbols", "length", "d_model", "n_heads", "steps", "batch_size",
                     "induction_prompts"):
            check_int("circuit-benchmark", name, getattr(self, name))
        unknown = [p for p in self.program_names if p not in PROGRAMS] + [
            a for a in self.ablation_names if a not in C.ABLATIONS]
        if unknown or not self.program_names or not self.ablation_names:
            raise ValueError(f"circuit-benchmark: programs are some of {','.join(PROGRAMS)} and ablations some of "
                             f"{','.join(C.ABLATIONS)} (comma-separated, at least one each); got {unknown or 'none'}")
        if self.d_model % self.n_heads:
            raise ValueError(f"circuit-benchmark: d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")


    @property
    def program_names(self) -> tuple[str, ...]:
        return tuple(p for p in self.programs.split(",") if p)

    @property
    def ablation_names(self) -> tuple[str, ...]:
        return tuple(a for a in self.ablations.split(",") if a)


PRESETS = {"quick": Config(), "default": Config(prompts=96, steps=1000), "paper": Config(prompts=243, steps=3000)}


def compiled_task(name: str, key, prompts: int, ablation: str):
    """A compiled library program, `prompts` random inputs of every length (padded), L2 on the real positions."""
    entry = lib.entry(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = compile_program(entry.program(entry.max_seq_len), entry.vocab, entry.max_seq_len)
    n = entry.max_seq_len
    inputs = list(all_inputs(entry.vocab, n, min_len=1))
    order = np.asarray(jax.random.permutation(key, len(inputs)))[:prompts]
    xs = jnp.stack([program.encode(list(inputs[i]), pad_to=n) for i in order])
    lengths = jnp.asarray([len(inputs[i]) for i in order])
    keep = (jnp.arange(n + 1)[None] >= 1) & (jnp.arange(n + 1)[None] <= lengths[:, None])
    corrupted = jnp.roll(xs, 1, 0)  # another prompt of the set (different lengths included)
    return program, C.circuit_task(program.model, xs, MSE(keep=keep), ablation, corrupted=corrupted)


def _record(found: C.Discovery, truth: Circuit, task) -> dict:
    """AUCs, time, and faithfulness of the top-k edges for k = 1..|E| (every size, one vmapped call)."""
    ranked = sorted(found.scored.edges, key=lambda e: -found.scored.scores[e])
    lay = task.layout
    masks = np.tril(np.ones((len(ranked), len(ranked)), np.float32))
    order = np.array([lay.index(e) for e in ranked])
    masks = masks[:, np.argsort(order)]  # row k keeps the k + 1 best edges
    faith = C.faithfulness(task, *[lay.circuit(m) for m in masks])
    return {"edge_auc": C.edge_roc(found, truth).auc, "node_auc": C.node_roc(found, truth).auc,
            "seconds": found.seconds, "faithfulness": [float(f) for f in faith]}


def _methods(task, config: Config) -> dict[str, C.Discovery]:
    return {"acdc": C.acdc(task), "eap": C.eap(task), "eap_ig": C.eap(task, ig_steps=config.ig_steps),
            "path_patching": C.path_patching(task)}


def _program(name: str, config: Config, run: SeedRun) -> dict:
    out: dict = {"ablations": {}}
    for ablation in ("zero", *(a for a in config.ablation_names if a != "zero")):  # zero first: its circuit is reused
        program, task = compiled_task(name, run.key(f"prompts-{name}"), config.prompts, ablation)
        truth = program.circuit
        found = _methods(task, config)
        if ablation == "zero":  # CD-T decomposes the clean run: no ablation; timed once
            found["cdt"] = C.cdt(task)
            acdc_circuit = found["acdc"].circuit_at(C.THRESHOLDS[len(C.THRESHOLDS) // 2])
            out["truth"] = truth.to_json()
            out["acdc_circuit"] = acdc_circuit.to_json()
            out["dot"] = C.to_dot(acdc_circuit, f"ACDC on {name}")
            out["n_edges"] = task.layout.n_edges
        out["ablations"][ablation] = {m: _record(f, truth, task) for m, f in found.items()}
        if ablation == "zero":
            zero_circuit = acdc_circuit
        else:  # the circuit ACDC found under zero ablation, evaluated under this one
            out["ablations"][ablation]["acdc_zero_circuit_faithfulness"] = float(C.faithfulness(task, zero_circuit)[0])
    return out


def induction_reference(prev: int, induction: int) -> Circuit:
    """The textbook induction circuit: a previous-token head in layer 0 (q, k: positions; v: tokens) whose
    output an induction head in layer 1 reads through its key; the induction head's query and value
    read the tokens, and it writes the logits."""
    p, i, inp = Node.attn(0, prev), Node.attn(1, induction), Node.input()
    edges = [Edge(inp, p, "q"), Edge(inp, p, "k"), Edge(inp, p, "v"), Edge(p, i, "k"), Edge(inp, i, "q"),
             Edge(inp, i, "v"), Edge(i, Node.logits(), "resid")]
    return Circuit.from_edges(edges)


def induction_heads(model, tokens) -> tuple[int, int]:
    """The layer-0 head that attends most to the previous position, and the layer-1 head that attends most,
    from the last position, to the token after the last symbol's earlier occurrence."""
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, [sites.attn(0, "pattern"), sites.attn(1, "pattern")]))(tokens)
    p0, p1 = np.asarray(cache[sites.attn(0, "pattern")]), np.asarray(cache[sites.attn(1, "pattern")])
    seq = tokens.shape[1]
    prev = p0[:, :, np.arange(1, seq), np.arange(seq - 1)].mean((0, 2))
    toks = np.asarray(tokens)
    earlier = [int(np.flatnonzero(row[:-1] == row[-1])[-1]) + 1 for row in toks]
    induction = p1[np.arange(len(toks)), :, -1, earlier].mean(0)
    return int(prev.argmax()), int(induction.argmax())


def _induction(config: Config, run: SeedRun) -> dict:
    task_spec = Induction(n_symbols=config.n_symbols, length=config.length)
    mconfig = models.induction_config(config.d_model, config.n_heads, config.n_symbols, config.length)
    model, losses = models.train_induction(mconfig, task_spec, run.key("init"), config.steps, config.batch_size,
                                           config.lr)
    tokens, correct = models.induction_prompts(task_spec, run.key("eval"), config.induction_prompts)
    corrupted, _ = models.induction_prompts(task_spec, run.key("corrupted"), tokens.shape[0])
    metric = models.induction_metric(model, tokens, correct)
    prev, induction = induction_heads(model, tokens)
    truth = induction_reference(prev, induction)
    out: dict = {"prev_head": prev, "induction_head": induction, "truth": truth.to_json(),
                 "final_loss": float(np.asarray(losses)[-1]), "ablations": {}}
    for ablation in config.ablation_names:
        task = C.circuit_task(model, tokens, metric, ablation, corrupted=corrupted)
        found = _methods(task, config)
        if ablation == config.ablation_names[-1]:  # CD-T has no ablation: once
            found["cdt"] = C.cdt(task, metric=metric)
        out["ablations"][ablation] = {m: _record(f, truth, task) for m, f in found.items()}
    return out


class CircuitBenchmark(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_seed(self, config: Config, run: SeedRun) -> list[Check]:
        records = {name: _program(name, config, run) for name in config.program_names}
        if config.induction:
            records["induction"] = _induction(config, run)
        run.write_json("circuits", records)
        return [Check(f"acdc_auc_{name}", 1.0, records[name]["ablations"]["zero"]["acdc"]["edge_auc"], 0.01,
                      f"ACDC's edge ROC AUC on compiled {name} against the compiler's circuit, zero ablation, L2 "
                      "to the clean output (Conmy et al.: 1.000)", one_sided=True) for name in ACDC_PROGRAMS
                if name in records]

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse([run.read_json("circuits") for run in runs], METHODS, MEAN_REFERENCE)


EXPERIMENT = CircuitBenchmark()
