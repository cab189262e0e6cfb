"""Dynamics kernels: instances x steps per second of the vmapped kernel against a plain per-instance
Python loop over the same jitted JAX step, and against a NumPy reference (scan-and-snap only).

- scan-and-snap (SGD): the Fig. 6 shapes at num_last = 1 (M = 33, batch 128, L = 128), SGD with
  momentum; the loop's step is the kernel's training step (batch key folded in inside the step,
  the kernel's threefry mode).
- scan-and-snap (reduced): the deterministic long-sequence dynamics at the same shapes.
- attention-SVM: normalised GD in float64 at the `local_converge` shapes (n = 6, T = 8, d = 10), the
  W-parametrisation's token-space step; plus the batched Att-SVM solver (Frobenius) against a loop
  of single-instance solves.

Every variant is jitted and warmed up first (compile time excluded; the loops' keys are made beforehand), then
timed `REPEATS` times; rates use the median. The vmapped rate uses `INSTANCES` instances; the loops
run `LOOP_INSTANCES` instances one after another and report their rate (instance-steps/s).

On a CPU-only machine the benchmark first makes one XLA CPU device per core
(`workbench.kernels.sharding.split_cpu_cores`): XLA runs these kernels on one thread per device, so
the kernel as shipped (vmapped, its instances spread over the devices by `shard_instances`) uses
every core, while a per-instance loop cannot. `ratios`:

- `scan_snap_vmap_over_loop`, `svm_vmap_over_loop`: the vmapped kernel sharded over all devices
  against the per-instance loop; `scan_snap_reduced_vmap_over_loop` the same for the reduced dynamics;
- `*_one_device`: the same on a single device (what vmap alone buys);
- `scan_snap_vmap_over_numpy`, `svm_solver_vmap_over_loop`.

Set `WB_BENCH_SCALE=100` for 100x the instances (GPU).
"""

import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from workbench.kernels import _numpy_reference as ref
from workbench.kernels.attention_svm import TokenState, init_params, ngd_step_w, sample_svm_data, simulate_ngd
from workbench.kernels.scan_snap import Dataset2, init_model2, simulate_batch, train_step
from workbench.kernels.scan_snap_reduced import reduced_step, simulate_reduced
from workbench.kernels.sharding import shard_instances, split_cpu_cores
from workbench.kernels.svm_solver import solve_att_svm

split_cpu_cores()  # only affects the CPU platform; before anything asks JAX for its backend
SCALE = int(os.environ.get("WB_BENCH_SCALE", "1"))
INSTANCES = 256 * SCALE
SS_STEPS, REDUCED_STEPS, NGD_STEPS = 20, 200, 200
LOOP_INSTANCES, REPEATS = 4, 5


def _timed(fn, *args) -> float:
    """Median seconds of `fn(*args)` over `REPEATS` runs, after one warm-up run."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _loop(step, state, steps: int) -> float:
    """Median seconds for `LOOP_INSTANCES` instances x `steps` calls of `step(state, i, s) -> state`."""

    def run():
        for i in range(LOOP_INSTANCES):
            s = state
            for t in range(steps):
                s = step(s, i, t)
        return s

    return _timed(run)


def scan_snap() -> dict:
    data = Dataset2(num_last=1, num_next_per_last=2)
    n, one = INSTANCES, jnp.int32(1)
    keys = jax.vmap(jax.random.key)(jnp.arange(n))

    def vmapped(keys):
        return simulate_batch(data, keys, jnp.ones(n), jnp.full(n, 2.0), jnp.ones(n, jnp.int32), steps=SS_STEPS,
                              zero_init=False).loss

    t_vmap = _timed(vmapped, keys)
    t_shard = _timed(lambda k: shard_instances(vmapped, k), keys)

    @jax.jit
    def step(model, vel, key, t):  # the training step of `simulate`'s scan body
        with jax.threefry_partitionable(False):
            return train_step(data, model, vel, jax.random.fold_in(key, t), 2.0, 1.0, one)

    model = init_model2(data, jax.random.key(0), one, zero_init=False)
    vel = jax.tree.map(jnp.zeros_like, model)
    loop_keys = [jax.random.key(i) for i in range(LOOP_INSTANCES)]
    t_loop = _loop(lambda s, i, t: step(s[0], s[1], loop_keys[i], t), (model, vel), SS_STEPS)
    t_np, np_count = _numpy_scan_snap(data, model)
    rate = {"vmap": n * SS_STEPS / t_vmap, "vmap_sharded": n * SS_STEPS / t_shard,
            "loop": LOOP_INSTANCES * SS_STEPS / t_loop, "numpy": np_count / t_np}
    return {"kernel": "scan_snap", "instances": n, "steps": SS_STEPS, "instance_steps_per_s": rate}


def scan_snap_reduced() -> dict:
    data = Dataset2(num_last=1, num_next_per_last=2)
    n, one = INSTANCES, jnp.int32(1)
    lr_y = jnp.linspace(1.0, 5.0, n)
    vmapped = jax.jit(jax.vmap(lambda r: simulate_reduced(data, jax.random.key(0), 1.0, r, one, steps=REDUCED_STEPS,
                                                          zero_init=True).loss))
    t_vmap = _timed(vmapped, lr_y)
    t_shard = _timed(lambda r: shard_instances(vmapped, r), lr_y)
    step = jax.jit(lambda m, v, lr: reduced_step(data, m, v, lr, jnp.float32(1.0), one))
    model = init_model2(data, jax.random.key(0), one, zero_init=True)
    state = (model, jax.tree.map(jnp.zeros_like, model))
    lrs = [lr_y[i] for i in range(LOOP_INSTANCES)]
    t_loop = _loop(lambda s, i, t: step(s[0], s[1], lrs[i]), state, REDUCED_STEPS)
    rate = {"vmap": n * REDUCED_STEPS / t_vmap, "vmap_sharded": n * REDUCED_STEPS / t_shard,
            "loop": LOOP_INSTANCES * REDUCED_STEPS / t_loop}
    return {"kernel": "scan_snap_reduced", "instances": n, "steps": REDUCED_STEPS, "instance_steps_per_s": rate}


def _numpy_scan_snap(data: Dataset2, model, instances: int = 2, steps: int = 5):
    rng = np.random.default_rng(0)
    probs = np.asarray(data.support_probs(), np.float64)
    mask = np.asarray(data.output_mask(jnp.int32(1)))
    t = time.perf_counter()
    for _ in range(instances):
        params = {k: np.asarray(getattr(model, k), np.float64) for k in ("Y_common", "Y_distinct", "Z_common", "Z_distinct")}
        vel = {k: np.zeros_like(v) for k, v in params.items()}
        for _ in range(steps):
            labels = rng.integers(0, data.num_next, 128)
            counts = rng.multinomial(data.seq_len - 1, probs, size=128).astype(np.float64)
            _, grads = ref.model2_grads(params, counts, labels, data.num_next_per_last, mask)
            params, vel = ref.sgd_momentum_step(params, vel, grads, 2.0, 1.0)
    return time.perf_counter() - t, instances * steps


def attention_svm() -> dict:
    n = INSTANCES
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), n)
        vmapped = jax.jit(jax.vmap(lambda k: simulate_ngd(k, 6, 8, 10, steps=NGD_STEPS, record_every=NGD_STEPS)[1].W))
        t_vmap = _timed(vmapped, keys)
        t_shard = _timed(lambda k: shard_instances(vmapped, k), keys)
        data = jax.jit(lambda k: sample_svm_data(k, 6, 8, 10))(jax.random.key(1))
        W0 = init_params(jax.random.key(2), 10, "W").W.astype(jnp.float64)
        step = jax.jit(lambda s: ngd_step_w(data, s, 0.1))  # the kernel's inner step (W-parametrisation)
        t_loop = _loop(lambda s, i, t: step(s), TokenState(data.z @ W0.T, jnp.zeros_like(data.z)), NGD_STEPS)
        X = jax.vmap(lambda k: sample_svm_data(k, 6, 8, 10))(keys)
    ids = np.zeros((n, 6), int)
    solve = lambda X, z, ids: solve_att_svm(X, z, ids, norm="fro").W  # noqa: E731
    t_solve_vmap = _timed(solve, X.X, X.z, ids)
    t_solve_loop = _timed(lambda: [solve(X.X[i], X.z[i], ids[i]) for i in range(LOOP_INSTANCES)])
    rate = {"vmap": n * NGD_STEPS / t_vmap, "vmap_sharded": n * NGD_STEPS / t_shard,
            "loop": LOOP_INSTANCES * NGD_STEPS / t_loop,
            "solver_vmap": n / t_solve_vmap, "solver_loop": LOOP_INSTANCES / t_solve_loop}
    return {"kernel": "attention_svm", "instances": n, "steps": NGD_STEPS, "instance_steps_per_s": rate}


def run() -> dict:
    ss, reduced, svm = scan_snap(), scan_snap_reduced(), attention_svm()
    r1, r2, r3 = ss["instance_steps_per_s"], svm["instance_steps_per_s"], reduced["instance_steps_per_s"]
    ratios = {
        "scan_snap_vmap_over_loop": r1["vmap_sharded"] / r1["loop"],
        "scan_snap_vmap_over_loop_one_device": r1["vmap"] / r1["loop"],
        "scan_snap_vmap_over_numpy": r1["vmap_sharded"] / r1["numpy"],
        "scan_snap_reduced_vmap_over_loop": r3["vmap_sharded"] / r3["loop"],
        "scan_snap_reduced_vmap_over_loop_one_device": r3["vmap"] / r3["loop"],
        "svm_vmap_over_loop": r2["vmap_sharded"] / r2["loop"],
        "svm_vmap_over_loop_one_device": r2["vmap"] / r2["loop"],
        "svm_solver_vmap_over_loop": r2["solver_vmap"] / r2["solver_loop"],
    }
    machine = dict(platform=platform.platform(), backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
                   jax=jax.__version__, cpu_count=os.cpu_count(), load_average=os.getloadavg())
    return {"benchmark": "kernels", "machine": machine, "results": [ss, reduced, svm], "ratios": ratios}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
