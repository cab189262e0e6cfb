"""Figures and tables of `circuit-benchmark`, from the seeds' JSON records."""

import numpy as np
import plotly.graph_objects as go

from workbench.core.results import Analysis
from workbench.models import Circuit, circuit_figure


def _mean(values) -> float:
    return float(np.mean(values))


def _auc_figure(records: list[dict], programs: list[str], methods) -> dict:
    fig = go.Figure()
    for m in methods:
        fig.add_bar(x=programs, y=[_mean([r[p]["ablations"]["zero"][m]["edge_auc"] for r in records]) for p in programs],
                    name=m)
    fig.add_hline(y=1.0, line_dash="dash", annotation_text="ACDC in Conmy et al. (reverse, frac_prevs)")
    fig.update_layout(title="Edge ROC AUC against the compiled circuit (zero ablation, L2)", barmode="group",
                      yaxis_title="edge AUC", yaxis_range=[0, 1.05])
    return fig.to_plotly_json()


def _faithfulness_figure(rec: dict, ablation: str, methods, title: str) -> dict:
    fig = go.Figure()
    for m in methods:
        if m in rec["ablations"][ablation]:
            f = rec["ablations"][ablation][m]["faithfulness"]
            fig.add_scatter(x=list(range(1, len(f) + 1)), y=f, mode="lines", name=m)
    truth = len(Circuit.from_json(rec["truth"]).edges)
    fig.add_vline(x=truth, line_dash="dot", annotation_text="ground-truth size")
    fig.update_layout(title=title, xaxis_title="circuit size (top-k edges by the method's score)",
                      yaxis_title="faithfulness (m(C) - m(empty)) / (m(M) - m(empty))")
    return fig.to_plotly_json()


def _runtime_figure(records: list[dict], programs: list[str], methods) -> dict:
    fig = go.Figure()
    for m in methods:
        fig.add_bar(x=programs, y=[_mean([r[p]["ablations"]["zero"][m]["seconds"] for r in records]) for p in programs],
                    name=m)
    fig.update_layout(title="Wall time per method (zero ablation: the first call, compilation included)",
                      barmode="group", yaxis_title="seconds", yaxis_type="log")
    return fig.to_plotly_json()


def _table(records: list[dict], names: list[str], methods) -> list[str]:
    lines = ["| model | ablation | " + " | ".join(f"{m} AUC" for m in methods) + " | " +
             " | ".join(f"{m} s" for m in methods) + " |", "|" + "---|" * (2 + 2 * len(methods))]
    for name in names:
        for ablation in records[0][name]["ablations"]:
            rows = [r[name]["ablations"][ablation] for r in records]
            aucs = [f"{_mean([x[m]['edge_auc'] for x in rows]):.3f}" if m in rows[0] else "" for m in methods]
            secs = [f"{_mean([x[m]['seconds'] for x in rows]):.2f}" if m in rows[0] else "" for m in methods]
            lines.append(f"| {name} | {ablation} | " + " | ".join(aucs) + " | " + " | ".join(secs) + " |")
    return lines


def analyse(records: list[dict], methods, mean_reference: str) -> Analysis:
    programs = [p for p in records[0] if p != "induction"]
    first = records[0]
    shown = programs[0]  # reverse in the presets
    ind = first.get("induction")
    figures = {
        "auc": _auc_figure(records, programs, methods),
        "faithfulness_program": _faithfulness_figure(first[shown], "zero", methods,
                                                     f"{shown}: faithfulness vs circuit size (zero ablation, L2)"),
        "runtime": _runtime_figure(records, programs, methods),
        "program_truth": circuit_figure(Circuit.from_json(first[shown]["truth"]), f"{shown}: the compiled circuit"),
        "program_acdc": circuit_figure(Circuit.from_json(first[shown]["acdc_circuit"]),
                                       f"{shown}: ACDC's circuit (zero ablation, mid threshold)"),
    }
    if ind is not None:
        last = list(ind["ablations"])[-1]
        figures["faithfulness_induction"] = _faithfulness_figure(
            ind, last, methods, f"induction: faithfulness vs circuit size ({last} ablation)")
    others = [a for a in first[shown]["ablations"] if a != "zero"]
    cross = [f"| {p} | " + " | ".join(f"{_mean([r[p]['ablations'][a]['acdc_zero_circuit_faithfulness'] for r in records]):.3f}"
                                      for a in others) + " |" for p in programs]
    truths = ("compiled programs: the compiler's circuit" if ind is None else
              "compiled programs: the compiler's circuit; induction: the reference circuit with previous-token "
              f"head a0.h{ind['prev_head']} and induction head a1.h{ind['induction_head']}, found from the "
              "attention patterns")
    lines = ["## AUC and time per method and ablation", "",
             f"Edge ROC AUC against the ground truth ({truths}). CD-T decomposes the clean run, so "
             "it has one row (zero ablation for compiled programs, the last ablation's row for induction). Times "
             "are wall seconds of each call: the zero row includes compiling each method for that "
             "model, the later rows reuse it (`wb bench circuits` times them warm).", "",
             *_table(records, [*programs, *(["induction"] if ind else [])], methods), "",
             f"**Mean ablation's reference set:** {mean_reference}. **Resample ablation:** each prompt's senders take "
             "their outputs on another prompt of the set (compiled programs: the set rolled by one; induction: "
             "fresh prompts).", "",
             "## ACDC's zero-ablation circuit under the other ablations", "",
             "| program | " + " | ".join(f"faithfulness ({a})" for a in others) + " |", "|---" * (1 + len(others)) + "|",
             *cross, "",
             "The compiler's circuit leaves out the `one`/`BOS` directions every head and MLP may read from the "
             "embeddings, so edges such as `input->m0` (the MLP's constant input) are real dependencies that "
             "count as false positives."]
    return Analysis(figures=figures, markdown="\n".join(lines))
