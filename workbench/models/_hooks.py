"""The hook-point mechanism: every intermediate passes through `hooks(name, value)`.

A `Hooks` object is built fresh for each call, so a forward pass stays a pure function (what it
records is returned, never stored on the model). Hooks and records are keyed by `Site` values or
by plain hook names; both resolve to names at trace time, so they cost nothing at run time.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
from jaxtyping import Array

from .sites import Site

HookFn = Callable[[Array, Any], Array]
Key = Site | str


def name_of(key: Key) -> str:
    """The hook name of a `Site` or of a plain name."""
    return key.name if isinstance(key, Site) else key


class Cache(dict):
    """Activations by hook name; also indexed by a `Site`, which selects its head / position.

    `cache["blocks.0.attn.hook_z"]` is the whole activation, `cache[Site(0, "z", head=1)]` its
    head-1 part (leading batch axes kept). Keys, `items()` and iteration are the names.
    """

    def __getitem__(self, key: Key):
        if isinstance(key, Site):
            return key.select(super().__getitem__(key.name))
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(name_of(key) if isinstance(key, Site | str) else key)

    def get(self, key: Key, default=None):
        return self[key] if key in self else default


def _flatten_with_keys(cache: Cache):
    names = tuple(sorted(cache))  # as for a dict: the tree structure does not depend on insertion order
    return tuple((jax.tree_util.DictKey(name), dict.__getitem__(cache, name)) for name in names), names


def _flatten(cache: Cache):
    names = tuple(sorted(cache))
    return tuple(dict.__getitem__(cache, name) for name in names), names


jax.tree_util.register_pytree_with_keys(
    Cache, _flatten_with_keys, lambda names, values: Cache(zip(names, values)), _flatten
)


def _apply(key: Key, fn: HookFn, value: Array) -> Array:
    """`fn` on the part of `value` that `key` addresses, checked to keep its shape."""
    narrow = isinstance(key, Site) and key.narrow
    part = key.select(value) if narrow else value  # type: ignore[union-attr]
    new = fn(part, key)
    if getattr(new, "shape", None) != part.shape:
        raise ValueError(f"hook on {key} returned shape {getattr(new, 'shape', type(new))}, expected {part.shape}")
    return value.at[key.index].set(new) if narrow else new  # type: ignore[union-attr]


class Hooks:
    """Applies `fns[key](value, key)` at the hook point of each key, and records the names in `record`.

    A `Site` key with a head or position gets (and returns) only its part of the activation;
    several keys on one hook point apply in the order given.
    """

    def __init__(self, fns: Mapping[Key, HookFn] | None = None, record: Iterable[Key] = frozenset()):
        self.fns: dict[str, list[tuple[Key, HookFn]]] = {}
        for key, fn in (fns or {}).items():
            self.fns.setdefault(name_of(key), []).append((key, fn))
        self.record = frozenset(name_of(key) for key in record)
        self.cache = Cache()

    def wants(self, name: str) -> bool:
        """Whether hook point `name` is observed (lets the model skip optional work)."""
        return name in self.fns or name in self.record

    def __call__(self, name: str, value: Array) -> Array:
        for key, fn in self.fns.get(name, ()):
            value = _apply(key, fn, value)
        if name in self.record:
            self.cache[name] = value
        return value


NO_HOOKS = Hooks()
