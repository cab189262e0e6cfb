"""Figures and tables of `transformer-programs`, from the seeds' records (`program_<task>.json`)."""

import textwrap
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from workbench.core.results import Analysis
from workbench.models import Circuit, circuit_figure

from ._base import SeedRun


def _records(runs, name: str) -> list[dict]:
    return [run.read_json(f"program_{name}") for run in runs if (Path(run.dir) / f"program_{name}.json").is_file()]


def _mean_sd(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _accuracy_figure(names, records, paper) -> dict:
    fig = go.Figure()
    shown = [n for n in names if records[n]]
    fig.add_bar(x=shown, y=[paper[n] for n in shown], name="paper (Table 1)")
    for key, label in (("accuracy", "Transformer Program (ours)"), ("standard_accuracy", "standard Transformer")):
        stats = [_mean_sd([r[key] for r in records[n]]) for n in shown]
        fig.add_bar(x=shown, y=[m for m, _ in stats], error_y={"type": "data", "array": [s for _, s in stats]},
                    name=f"{label}, mean ± sd")
    fig.update_layout(title="Test accuracy per task", barmode="group", yaxis_title="accuracy", yaxis_range=[0, 1.05])
    return fig.to_plotly_json()


def _curves(names, runs) -> dict:
    fig = go.Figure()
    for name in names:
        per_seed = [SeedRun(r.seed, Path(r.dir) / name).curve("eval", "accuracy") for r in runs]
        per_seed = [c for c in per_seed if len(c[0])]
        if not per_seed:
            continue
        n = min(len(c[0]) for c in per_seed)
        mean = np.mean([c[1][:n] for c in per_seed], 0)
        fig.add_scatter(x=per_seed[0][0][:n].tolist(), y=mean.tolist(), mode="lines+markers", name=name)
    fig.update_layout(title="Accuracy of the discretised program during training (mean over seeds)",
                      xaxis_title="step", yaxis_title="eval accuracy")
    return fig.to_plotly_json()


def _fmt(values, spread: bool = True) -> str:
    m, s = _mean_sd(values)
    return f"{m:.3f} ± {s:.3f}" if spread else f"{m:.3f}"


def _count(record: dict, key: str) -> str:
    return f"{record[key]:,}" if key in record else "not recorded"


def _table(names, records, paper) -> str:
    lines = ["| task | paper | ours (mean ± sd) | seeds | standard Transformer | agreement (Python, RASP) | "
             "program size (best seed) | recompiled model | parameters (program, standard) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        recs = records[n]
        if not recs:
            lines.append(f"| {n} | {paper[n]:.3f} | not run | 0 | | | | | |")
            continue
        best = max(recs, key=lambda r: r["accuracy"])
        size = best["size"]
        shape = best["compiled_shape"]
        lines.append(
            f"| {n} | {paper[n]:.3f} | {_fmt([r['accuracy'] for r in recs])} | {len(recs)} | "
            f"{_fmt([r['standard_accuracy'] for r in recs])} | "
            f"{min(r['agreement_python'] for r in recs):.3f}, {min(r['agreement_compiled'] for r in recs):.3f} | "
            f"{size['cat_head']} cat + {size['num_head']} num heads, {size['mlp'] + size['num_mlp']} MLPs, "
            f"{best['source_lines']} lines | {shape['n_layers']} layers, d_model {shape['d_model']} | "
            f"{_count(best, 'program_params')}, {_count(best, 'standard_params')} |")
    return "\n".join(lines)


def _programs(names, records) -> str:
    out = []
    for n in names:
        if not records[n]:
            continue
        best = max(records[n], key=lambda r: r["accuracy"])
        title = f"Decompiled program: {n} (best seed, accuracy {best['accuracy']:.3f}, {best['source_lines']} lines)"
        out += [f'??? abstract "{title}"', "", "    ```python", textwrap.indent(best["source"], "    "), "    ```", ""]
    return "\n".join(out)


def analyse(names, runs, paper, notes: str = "") -> Analysis:
    records = {n: _records(runs, n) for n in names}
    figures = {"accuracy": _accuracy_figure(names, records, paper), "training": _curves(names, runs)}
    captions = {"accuracy": "paper: Table 1 as recalled in the project's references (see the notes below)",
                "training": "accuracy of the argmax program on the eval set, logged during training"}
    for n in names:
        if records[n]:
            best = max(records[n], key=lambda r: r["accuracy"])
            figures[f"circuit_{n}"] = circuit_figure(Circuit.from_json(best["circuit"]),
                                                     title=f"{n}: circuit of the recompiled transformer (best seed)")
            captions[f"circuit_{n}"] = (f"ground truth from compile_program; {best['validation']}; "
                                        f"agreement on the {best['test_size']} test sequences measured separately")
    markdown = "\n\n".join(["## Accuracy and agreement", _table(names, records, paper), notes, "## Programs",
                            _programs(names, records)])
    return Analysis(figures=figures, markdown=markdown, captions=captions)
