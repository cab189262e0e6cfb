"""Circuit discovery: each method of `workbench.interp.circuits` timed on the same model and task, same run.

The model is compiled `reverse` (4 layers, 1 head, MLPs; 77 edges in its complete graph) on 48 random
inputs of every length, zero ablation, L2 to the clean output over the real positions (the
acceptance task). Methods:

- `acdc`: ACDC at one threshold (1e-3), a scan over the edges in reverse topological order;
  `acdc_sweep`: the same at the 34 thresholds of `THRESHOLDS` (vmapped), which the ROC needs;
- `eap`: edge attribution patching, one backward pass; `eap_ig`: integrated over 5 masks;
- `path_patching`: every edge ablated alone, one vmapped program;
- `cdt`: `interp.cdt.discover` (iterative, 3 rounds of 2 nodes).

Each is called once to compile, then timed `REPEATS` times, alternating; medians. Ratios include
`acdc_over_cdt` (goal >= 10: CD-T's claimed speed-up over ACDC).
"""

import os
import platform
import statistics
import time

import jax

from workbench.experiments.circuit_benchmark import compiled_task
from workbench.interp import circuits as C

REPEATS = 3
PROMPTS = 48


def _methods(task):
    return {
        "acdc": lambda: C.acdc(task, thresholds=(1e-3,)),
        "acdc_sweep": lambda: C.acdc(task),
        "eap": lambda: C.eap(task),
        "eap_ig": lambda: C.eap(task, ig_steps=5),
        "path_patching": lambda: C.path_patching(task),
        "cdt": lambda: C.cdt(task),
    }


def run() -> dict:
    program, task = compiled_task("reverse", jax.random.key(0), PROMPTS, "zero")
    methods = _methods(task)
    aucs = {name: C.edge_roc(fn(), program.circuit).auc for name, fn in methods.items()}  # warm-up (compiles)
    times = {name: [] for name in methods}
    for _ in range(REPEATS):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    machine = dict(platform=platform.platform(), backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
                   jax=jax.__version__, cpu_count=os.cpu_count(), load_average=os.getloadavg())
    result = {"model": "compiled reverse", "edges": task.layout.n_edges, "prompts": PROMPTS, "seconds": median,
              "edge_auc": aucs}
    ratios = {"acdc_over_cdt": median["acdc"] / median["cdt"], "acdc_sweep_over_cdt": median["acdc_sweep"] / median["cdt"],
              "acdc_over_eap": median["acdc"] / median["eap"], "path_patching_over_eap": median["path_patching"] / median["eap"],
              "cdt_over_eap": median["cdt"] / median["eap"]}
    return {"benchmark": "circuits", "machine": machine, "results": [result], "ratios": ratios}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
