"""Seeds sharded over 8 forced host devices train to the same losses as on one device."""

import os
import subprocess
import sys
import textwrap

from workbench.train.sharding import seed_mesh

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


def test_sharded_seeds_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
