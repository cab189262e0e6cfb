"""The hook-point mechanism: every intermediate passes through `hooks(name, value)`.

A `Hooks` object is built fresh for each call, so a forward pass stays a pure function (what it
records is returned, never stored on the model).
"""

from collections.abc import Callable

from jaxtyping import Array

HookFn = Callable[[Array, str], Array]


class Hooks:
    """Applies `fns[name](value, name)` at hook point `name`, and records `name` if asked."""

    def __init__(self, fns: dict[str, HookFn] | None = None, record: frozenset[str] = frozenset()):
        self.fns = fns or {}
        self.record = record
        self.cache: dict[str, Array] = {}

    def wants(self, name: str) -> bool:
        """Whether hook point `name` is observed (lets the model skip optional work)."""
        return name in self.fns or name in self.record

    def __call__(self, name: str, value: Array) -> Array:
        fn = self.fns.get(name)
        if fn is not None:
            new = fn(value, name)
            if getattr(new, "shape", None) != value.shape:
                raise ValueError(
                    f"hook on {name} returned shape {getattr(new, 'shape', type(new))}, expected {value.shape}"
                )
            value = new
        if name in self.record:
            self.cache[name] = value
        return value


NO_HOOKS = Hooks()
