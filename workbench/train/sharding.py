"""Spread the seed axis of a vmapped training group over devices (`NamedSharding` on a 1-D mesh).

Seeds are independent, so putting the leading (seed) axis of the models, optimiser states and data
keys across devices lets XLA's SPMD partitioner train each device's seeds locally, with no
communication. With one device, or a seed count that no device count above one divides, this is a
no-op. Results are the same as on one device (each seed's computation is unchanged). Test on CPU
with `XLA_FLAGS=--xla_force_host_platform_device_count=8`.
"""

from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def seed_mesh(n_seeds: int, devices=None) -> Mesh | None:
    """A 1-D mesh named `seed` over the most devices that evenly divide `n_seeds` (None if that is one)."""
    devices = list(devices if devices is not None else jax.devices())
    count = max((k for k in range(1, len(devices) + 1) if n_seeds % k == 0), default=1)
    return Mesh(np.asarray(devices[:count]), ("seed",)) if count > 1 else None


def shard_seeds(tree: Any, mesh: Mesh | None) -> Any:
    """Every array leaf of `tree` with its leading (seed) axis split over `mesh` (unchanged if None)."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec("seed"))
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.device_put(arrays, sharding), static)
