"""Construction-time checks of configs and tasks: a bad value raises a `ValueError` naming the parameter.

Tasks and experiment configs call these at the top of `__init__` (or in `__check_init__`), before any array is built,
so a bad value never surfaces as a shape error deep inside `jit`.
"""

import math


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(owner: str, name: str, value, *, low: int = 1, high: int | None = None) -> None:
    """`value` is an int in `[low, high]`."""
    if not _is_int(value) or value < low or (high is not None and value > high):
        upper = f" and <= {high}" if high is not None else ""
        raise ValueError(f"{owner}.{name} must be an integer >= {low}{upper}, got {value!r}")


def check_float(
    owner: str, name: str, value, *, low: float = 0.0, strict: bool = False, high: float | None = None
) -> None:
    """`value` is a finite real number `>= low` (`> low` if `strict`) and `<= high`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        upper = f" and <= {high}" if high is not None else ""
        raise ValueError(f"{owner}.{name} must be a finite number {bound}{upper}, got {value!r}")


def check_choice(owner: str, name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {choices}, got {value!r}")


def check_shape(owner: str, name: str, array, shape: tuple[int, ...]) -> None:
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{owner}.{name} must have shape {tuple(shape)}, got {tuple(array.shape)}")


def parse_positive_list(owner: str, name: str, text: str, kind: type = float) -> list:
    """The comma-separated list `text` (e.g. a `--set` value `"1,3,5"`) as positive `kind` values (int or float)."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        what = "integers" if kind is int else "numbers"
        raise ValueError(
            f"{owner}.{name} must be a comma-separated list of positive {what}, got {text!r} (e.g. '1,3,5')"
        )
    return values
