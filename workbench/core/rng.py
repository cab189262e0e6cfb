"""Named seed streams: one integer seed per run, independent streams derived by name.

Batch `t` of a stream is `fold_in(stream, t)`, so data is a pure function of (seed, step) and a
resumed run sees exactly the batches an uninterrupted one would.
"""

import hashlib

import jax

from .types import Key


def _name_to_int(name: str) -> int:
    # A stable hash (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def derive_key(key: Key, name: str) -> Key:
    """The stream called `name` under `key`: `fold_in(key, sha256(name))`."""
    return jax.random.fold_in(key, _name_to_int(name))


def seed_streams(seed: int, names: tuple[str, ...] = ("init", "data", "eval")) -> dict[str, Key]:
    """Independent keys for each named stream of a run with integer `seed`."""
    if len(set(names)) != len(names):
        raise ValueError(f"stream names must be distinct, got {names}")
    root = jax.random.key(seed)
    return {name: derive_key(root, name) for name in names}


def batch_key(stream: Key, step: int) -> Key:
    """The key of batch `step` drawn from `stream`."""
    return jax.random.fold_in(stream, step)
