"""The instance axis split over 4 (forced host) devices gives the same results as one device."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import functools, jax, jax.numpy as jnp, numpy as np
    from workbench.kernels.scan_snap import Dataset2, simulate_batch
    from workbench.kernels.sharding import shard_instances
    assert jax.device_count() == 4
    data = Dataset2(num_last=1, num_next_per_last=2, seq_len=16)
    n = 6  # not a multiple of 4: exercises the padding
    args = (jax.vmap(jax.random.key)(jnp.arange(n)), jnp.ones(n), jnp.full(n, 2.0), jnp.ones(n, jnp.int32))
    fn = functools.partial(simulate_batch, data, steps=3, batch_size=8, zero_init=False)
    sharded = shard_instances(fn, *args)
    placed = shard_instances(lambda x: x * 1.0, jnp.arange(8.0))
    assert len(placed.sharding.device_set) == 4
    np.testing.assert_allclose(sharded.loss, fn(*args).loss, rtol=1e-5)
    print("ok")
""")


def test_sharded_matches_single_device(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    import os

    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env={**os.environ, **env},
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
