"""Frozen-dataclass configs: to/from dicts, a stable hash, and typed `key=value` overrides."""

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any

from .errors import WorkbenchError


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config), sort_keys=True))


def config_hash(config: Any, length: int = 10) -> str:
    """A stable short hash of the config's JSON (sorted keys)."""
    return dict_hash(config_to_dict(config), length)


def dict_hash(config: dict[str, Any], length: int = 10) -> str:
    """`config_hash` of a config already turned into a dict (e.g. read back from `config.json`)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _parse_value(raw: str, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw.lower() in ("none", "null") and len(options) < len(typing.get_args(kind)):
            return None
        errors = []
        for option in options:
            try:
                return _parse_value(raw, option, key)
            except WorkbenchError as e:
                errors.append(e)
        raise errors[0]
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        if raw not in allowed:
            raise WorkbenchError(f"--set {key}={raw}: must be one of {', '.join(map(str, allowed))}")
        return raw
    try:
        if kind is bool:
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return raw
    except ValueError:
        pass
    else:
        raise WorkbenchError(f"--set {key}: cannot override a field of type {kind}")
    raise WorkbenchError(
        f"--set {key}={raw}: expected {getattr(kind, '__name__', kind)}", f"e.g. --set {key}={_example(kind)}"
    )


def _example(kind: Any) -> str:
    return {bool: "true", int: "3", float: "0.001"}.get(kind, "value")


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Return `config` with `key=value` overrides applied, each parsed to the field's type."""
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise WorkbenchError(f"--set {item!r} is not key=value", "write e.g. --set steps=100")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(config))
            raise WorkbenchError(f"--set {key}: unknown key", f"known keys: {known}")
        changes[key] = _parse_value(raw.strip(), hints[key], key)
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as e:
        raise WorkbenchError(f"--set: {e}") from None
