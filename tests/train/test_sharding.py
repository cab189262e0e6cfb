"""Seeds sharded over 8 forced host devices train to the same losses as on one device, by hand and
through `wb run --vmap` (whose loop shards the seed axis whenever there is more than one local device)."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

from workbench.core.io import read_jsonl

from workbench.train.sharding import seed_mesh

# The subprocesses see 8 forced host devices: they keep their own compilation cache, so that no executable
# compiled for that platform is written to (or read from) the one-device cache of this test session.
CACHE_8DEV = tempfile.mkdtemp(prefix="wb-jax-cache-8dev-")
atexit.register(shutil.rmtree, CACHE_8DEV, ignore_errors=True)
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
       "JAX_COMPILATION_CACHE_DIR": CACHE_8DEV}
TINY = ["steps=12", "batch_size=16", "eval_size=32", "eta_prompts=32", "ckpt_every=6", "log_every=3", "eval_every=6"]
SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, equinox as eqx, optax
    from workbench.models import Transformer, TransformerConfig
    from workbench.train import make_step, stack
    from workbench.train.sharding import seed_mesh, shard_seeds
    assert jax.device_count() == 8
    cfg = TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=8, d_vocab=11, attn_only=True)
    def loss(m, t):
        logp = jax.nn.log_softmax(m.batched(t[:, :-1]), -1)
        return -jnp.take_along_axis(logp, t[:, 1:, None], -1).mean()
    sample = lambda key: jax.random.randint(key, (4, 9), 0, 11)
    opt = optax.adam(1e-2)
    def train(mesh):
        models = stack([Transformer(cfg, key=jax.random.key(s)) for s in range(8)])
        state = eqx.filter_vmap(lambda m: opt.init(eqx.filter(m, eqx.is_array)))(models)
        keys = jax.random.split(jax.random.key(0), 8)
        models, state, keys = shard_seeds((models, state, keys), mesh)
        step, out = make_step(loss, opt, sample), []
        for t in range(3):
            models, state, l = step(models, state, keys, jnp.asarray(t))
            out.append(l)
        return np.asarray(out), models
    mesh = seed_mesh(8)
    assert mesh is not None and mesh.size == 8
    sharded, models = train(mesh)
    assert len(models.unembed.W_U.sharding.device_set) == 8
    single, _ = train(None)
    np.testing.assert_allclose(sharded, single, rtol=1e-6)
    print("ok")
""")


def test_seed_mesh_uses_the_devices_that_divide_the_seeds():
    devices = list(range(8))
    assert seed_mesh(6, devices).size == 6 and seed_mesh(12, devices).size == 6
    assert seed_mesh(8, devices).size == 8 and seed_mesh(7, devices[:4]) is None


@pytest.mark.slow  # the `wb run --vmap` test below covers the same path end to end in CI
def test_sharded_seeds_match_one_device():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def _metrics(group) -> dict[int, list[dict]]:
    return {s: read_jsonl(group / f"seed-{s}" / "metrics.jsonl") for s in range(4)}


def test_wb_run_vmap_shards_the_seeds_and_matches_one_device(tmp_path):
    args = [sys.executable, "-m", "workbench.run", "run", "icl-gd", "--seeds", "0-3", "--vmap", "--out", str(tmp_path / "8")]
    proc = subprocess.run(args + [a for o in TINY for a in ("--set", o)], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 seeds over 4 devices" in proc.stderr  # the most of the 8 devices that divide 4
    # The one-device run in a fresh process too: a long pytest session's state stays out of the comparison
    # (in a full `make test` an in-process run here once crashed inside XLA, not reproducible in isolation).
    one_dev = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
    args[-1] = str(tmp_path / "1")
    proc = subprocess.run(args + [a for o in TINY for a in ("--set", o)], capture_output=True, text=True, env=one_dev,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sharded, one = (_metrics(next((tmp_path / n / "icl-gd").glob("*-vmap"))) for n in ("8", "1"))
    assert len(one) == 4
    for s in range(4):  # same records; values equal to float32 rounding (per-device GEMMs sum in another order)
        assert [(r["step"], r["name"]) for r in sharded[s]] == [(r["step"], r["name"]) for r in one[s]]
        np.testing.assert_allclose([r["value"] for r in sharded[s]], [r["value"] for r in one[s]], rtol=1e-5, atol=1e-6)
