"""Spread a vmapped kernel's instance axis over devices (`NamedSharding` on a 1-D mesh).

Instances are independent, so placing the inputs' leading axis across devices lets XLA's SPMD
partitioner run each device's slice locally with no communication. On one device this is a
no-op. Test on CPU with `XLA_FLAGS=--xla_force_host_platform_device_count=8`.

On a CPU, XLA runs each of these kernels' small fused loops on one thread, so a vmapped kernel uses
one core however many the machine has; `split_cpu_cores()` (called before JAX's first operation)
makes one CPU device per core, and `shard_instances` then keeps every core busy.
"""

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def split_cpu_cores(count: int | None = None) -> int:
    """Ask for `count` (default: every core) XLA CPU devices; returns how many devices JAX has.

    It only takes effect before JAX has run anything in this process; after that the device count
    stays as it is (no error), so callers should read the returned count.
    """
    try:
        jax.config.update("jax_num_cpu_devices", count or os.cpu_count() or 1)
    except RuntimeError:  # backends already initialised
        pass
    return jax.device_count()


def instance_mesh(devices=None) -> Mesh:
    """A 1-D mesh named `instance` over `devices` (default: all)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("instance",))


def shard_instances(fn: Callable, *args, mesh: Mesh | None = None):
    """`fn(*args)` with every array argument's leading (instance) axis split over `mesh`.

    Arguments are padded (by repeating the last instance) to a multiple of the device count and
    the outputs' leading axis is cut back, so any instance count works. `fn` must be batched
    over that axis (e.g. `functools.partial(simulate_batch, data, steps=...)`).
    """
    mesh = mesh or instance_mesh()
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("shard_instances: pass at least one array argument with a leading instance axis")
    count = leaves[0].shape[0]
    if any(getattr(x, "shape", (None,))[0] != count for x in leaves):
        raise ValueError("shard_instances: every array argument needs the same leading (instance) axis length")
    pad = (-count) % mesh.size

    def place(x):
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
        return jax.device_put(x, NamedSharding(mesh, PartitionSpec("instance")))

    out = fn(*jax.tree.map(place, args))
    return jax.tree.map(lambda y: y[:count], out)
