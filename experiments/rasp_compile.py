"""Compiled RASP programs (tracr's library and the RASP paper's most-freq) as plain workbench
transformers: their size, their agreement with the RASP interpreter on every input, and their
ground-truth circuits.

Per program the run writes `programs.json` (one row each: layers, heads, d_model, d_mlp, d_head,
parameters, inputs checked, agreement) and `figures/circuit_<program>.json` into each seed folder.
Compilation is deterministic; the seed only picks the random inputs (the `rasp_inputs` stream of
`workbench.rasp.sample_inputs`) of programs whose input space is larger than `max_inputs`.
"""

import dataclasses
import json
import time

import equinox as eqx
import jax
import numpy as np
import plotly.graph_objects as go

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.models import circuit_figure
from workbench.rasp import agreement, compile_program
from workbench.rasp import library as lib
from workbench.rasp.compiler import count_inputs, validation_inputs
from workbench.rasp.layout import sublayer_count

from ._base import Experiment, SeedRun

TITLE = "Compiled RASP programs with ground-truth circuits"
PAPER = (
    "Lindner et al. 2023, *Tracr: Compiled Transformers as a Laboratory for Interpretability* (NeurIPS); "
    "Weiss, Goldberg & Yahav 2021, *Thinking Like Transformers* (ICML)"
)
CLAIM = (
    "A RASP program compiles into transformer weights that compute it exactly: each selector becomes an "
    "attention head, each elementwise map an MLP, with one residual subspace per intermediate value. tracr "
    "compiles `reverse` (vocab {1,2,3}, length 5) into 4 layers with one head each and `frac_prevs` (vocab "
    "{w,x,y,z}, length 5) into 2 layers. The RASP paper bounds the attention layers a program needs: "
    "reverse 2, hist 1, sort 2, most-freq 3."
)

# (program, published number, what is counted): the checks beyond "agrees on every input"
TRACR_LAYERS = {"reverse": 4, "frac_prevs": 2}
RASP_ATTENTION_LAYERS = {"reverse": 2, "hist": 1, "sort": 2, "most_freq": 3}


@dataclasses.dataclass(frozen=True)
class Config:
    programs: str = "all"  # comma-separated library names, or "all"
    length_offset: int = 0  # added to each program's max_seq_len (its vocabulary stays)
    max_inputs: int = 2000  # check every input when there are at most this many, else this many random ones

    def __post_init__(self):
        if self.length_offset < 0 or self.max_inputs < 1:
            raise ValueError("length_offset must be >= 0 and max_inputs >= 1")
        for name in self.names():
            lib.entry(name)  # raises ValueError naming the unknown program

    def names(self) -> list[str]:
        if self.programs == "all":
            return [e.name for e in lib.LIBRARY]
        return [p.strip() for p in self.programs.split(",") if p.strip()]


# `quick` and `paper` use the published sizes (tracr: reverse over {1,2,3} and frac_prevs over
# {w,x,y,z} at max_seq_len 5), every input checked; `default` adds one position to every program.
PRESETS = {
    "quick": Config(),
    "default": Config(length_offset=1, max_inputs=20_000),
    "paper": Config(max_inputs=50_000),
}


def measure(entry: lib.LibraryEntry, config: Config, seed: int) -> tuple[dict, dict]:
    """Compile one library program and compare it with the interpreter: its row and circuit figure."""
    n = entry.max_seq_len + config.length_offset
    started = time.time()
    compiled = compile_program(entry.program(n), entry.vocab, n, validation_budget=config.max_inputs, seed=seed)
    compile_s = time.time() - started
    inputs, _ = validation_inputs(entry.vocab, n, config.max_inputs, seed)
    exhaustive = count_inputs(entry.vocab, n) <= config.max_inputs
    result = agreement(compiled, inputs)
    cfg = compiled.model.config
    used = sublayer_count(compiled.layout)
    row = {
        "program": entry.name, "vocab": [str(v) for v in entry.vocab], "max_seq_len": n,
        "layers": cfg.n_layers, "attn_layers_used": used["attn"], "mlp_layers_used": used["mlp"],
        "heads": cfg.n_heads, "heads_total": len(compiled.layout.heads), "d_model": cfg.d_model,
        "d_mlp": cfg.d_mlp, "d_head": cfg.d_head,
        "params": n_params(compiled.model),
        "inputs": result.n_inputs, "exhaustive": exhaustive, "agreement": result.rate,
        "mismatches": [[list(map(str, x)), list(map(str, w)), list(map(str, g))] for x, w, g in result.mismatches],
        "validation": compiled.validation, "compile_s": compile_s,
        "sites": {k: list(v) for k, v in compiled.sites.items()},
        "circuit": compiled.circuit.to_json(),
    }  # fmt: skip
    return row, circuit_figure(compiled.circuit, title=f"{entry.name}: ground-truth circuit")


def n_params(model) -> int:
    """Every parameter of the model, zeros included."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))))


def checks(rows: list[dict]) -> list[Check]:
    by_name = {r["program"]: r for r in rows}
    out = [
        Check(f"{r['program']}: agreement with the interpreter", 1.0, r["agreement"], 0.0,
              f"fraction of {r['inputs']} {'(all)' if r['exhaustive'] else 'random'} inputs of length <= "
              f"{r['max_seq_len']} where compiled == interpreted", one_sided=True)
        for r in rows
    ]  # fmt: skip
    for name, layers in TRACR_LAYERS.items():
        if name in by_name and by_name[name]["max_seq_len"] == lib.entry(name).max_seq_len:
            out.append(Check(f"{name}: layers (tracr)", layers, by_name[name]["layers"], 0.0,
                             "transformer layers (attention + MLP) of the compiled model, as tracr compiles it"))
    for name, layers in RASP_ATTENTION_LAYERS.items():
        if name in by_name:
            out.append(Check(f"{name}: attention layers (RASP paper)", layers, by_name[name]["attn_layers_used"], 0.0,
                             "layers whose attention holds a head; the RASP paper counts attention layers"))
    return out


def _size_figure(rows: list[dict]) -> dict:
    names = [r["program"] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=names, y=[r["layers"] for r in rows], name="layers")
    fig.add_bar(x=names, y=[r["heads_total"] for r in rows], name="heads (total)")
    fig.add_scatter(x=names, y=[r["d_model"] for r in rows], name="d_model", yaxis="y2", mode="markers")
    fig.update_layout(title="Compiled program sizes", template="plotly_white", barmode="group",
                      yaxis=dict(title="layers / heads"), yaxis2=dict(title="d_model", overlaying="y", side="right"))
    return json.loads(fig.to_json())


def _validation_mark(row: dict) -> str:
    """The compiler's own validation, marked where it ran on a sample only (the model may miscompile)."""
    text = row["validation"]
    return text if text.startswith("exhaustive") else f"**{text}** (not proven for every input)"


class RaspCompile(Experiment[Config]):
    """Compile and check every program once per seed (`vmap` has nothing to batch here)."""

    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_seed(self, config: Config, run: SeedRun) -> list[Check]:
        rows = []
        for name in config.names():
            row, figure = measure(lib.entry(name), config, run.seed)
            rows.append(row)
            run.write_figure(f"circuit_{name}", figure)
            run.log.log(0, name, {k: row[k] for k in ("agreement", "layers", "heads", "d_model", "params", "inputs")})
        run.write_json("programs", rows)
        return checks(rows)

    def analyse(self, config: Config, runs: list[SeedRun]) -> Analysis:
        """A size/agreement table over programs (first seed; agreement as min over seeds) and the circuits."""
        per_seed = [run.read_json("programs") for run in runs]
        rows = per_seed[0]
        worst = {r["program"]: min(s[i]["agreement"] for s in per_seed) for i, r in enumerate(rows)}
        header = ("| program | vocab | max len | layers | attn layers used | heads/layer | d_model | d_mlp | params "
                  "| inputs checked | compiler validation | agreement (min over seeds) |\n|" + "---|" * 12)
        lines = [header]
        for r in rows:
            checked = f"{r['inputs']} ({'all' if r['exhaustive'] else 'random'})"
            lines.append(f"| {r['program']} | {{{', '.join(r['vocab'])}}} | {r['max_seq_len']} | {r['layers']} | "
                         f"{r['attn_layers_used']} | {r['heads']} | {r['d_model']} | {r['d_mlp']} | {r['params']} | "
                         f"{checked} | {_validation_mark(r)} | {worst[r['program']]:.4f} |")
        notes = (
            "\n\nLayers count attention + MLP blocks. tracr's allocation (and ours) gives every MLP-only step its own "
            "layer, so `reverse` takes 4 layers although only 2 hold attention; the RASP paper's counts are attention "
            "layers. `most_freq` uses `SelectorAnd`, which tracr cannot compile.\n"
        )
        figures = {"sizes": _size_figure(rows)}
        for r in rows:
            figures[f"circuit_{r['program']}"] = runs[0].read_figure(f"circuit_{r['program']}")
        captions = {f"circuit_{r['program']}": f"Ground-truth circuit of {r['program']}: which head or MLP computes "
                    f"which RASP expression (hover a node) and which reads from which." for r in rows}
        captions["sizes"] = "Size of each compiled program."
        return Analysis(figures=figures, markdown="\n".join(lines) + notes, captions=captions)


EXPERIMENT = RaspCompile()
