"""Atomic checkpoints: `checkpoints/step-XXXXXXXX.eqx` (equinox leaves of (model, opt_state)) plus a
JSON sidecar with the step, config, the run's identity and the file's sha256. A checkpoint counts only
once its sidecar exists, so a kill at any moment leaves the previous checkpoint usable. The newest
`keep` are kept.

The identity of a run folder (`experiment`, `config_hash`, `seed`, `vmap`) is what its `config.json`
records; a checkpoint whose sidecar records another identity (one copied in from another run) is
refused on load.
"""

import hashlib
import io
from pathlib import Path
from typing import Any

import equinox as eqx

from workbench.core.errors import WorkbenchError
from workbench.core.io import read_json, write_bytes_atomic, write_json_atomic

KEEP = 2


def _paths(run_dir: Path, step: int) -> tuple[Path, Path]:
    base = Path(run_dir) / "checkpoints" / f"step-{step:08d}"
    return base.with_suffix(".eqx"), base.with_suffix(".json")


IDENTITY_KEYS = ("experiment", "config_hash", "seed", "vmap")


def run_identity(run_dir: Path) -> dict[str, Any]:
    """The identity fields of the seed folder's `config.json` (empty if it has none)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return {}
    try:
        record = read_json(path)
    except (OSError, ValueError) as e:
        raise WorkbenchError(f"{path} is unreadable: {e}", f"move {run_dir} away or rerun with --force") from None
    return {k: record[k] for k in IDENTITY_KEYS if k in record}


def save(run_dir: Path, step: int, tree: Any, meta: dict[str, Any], keep: int = KEEP) -> None:
    """Write the checkpoint of `tree` at `step` (its sidecar: `meta` and the folder's identity), then drop
    all but the newest `keep`."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    data = buffer.getvalue()
    leaves_path, sidecar_path = _paths(run_dir, step)
    write_bytes_atomic(leaves_path, data)
    write_json_atomic(sidecar_path, {**meta, **run_identity(run_dir), "step": step, "file": leaves_path.name,
                                     "sha256": hashlib.sha256(data).hexdigest()})
    prune(run_dir, keep)


def prune(run_dir: Path, keep: int = KEEP) -> None:
    """Delete all but the newest `keep` checkpoints, and leaves without a sidecar older than the newest
    (what a kill during `save` or `prune` leaves behind; newer ones are rewritten when training resumes)."""
    complete = steps(run_dir)
    for old in complete[:-keep]:
        leaves_path, sidecar_path = _paths(run_dir, old)
        sidecar_path.unlink(missing_ok=True)  # first: a sidecar without its leaves would count as a checkpoint
        leaves_path.unlink(missing_ok=True)
    for leaves_path in (Path(run_dir) / "checkpoints").glob("step-*.eqx"):
        if not leaves_path.with_suffix(".json").exists() and complete and _step(leaves_path) < complete[-1]:
            leaves_path.unlink(missing_ok=True)


def steps(run_dir: Path) -> list[int]:
    """Steps with a complete checkpoint (sidecar present), ascending."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(_step(p) for p in folder.glob("step-*.json"))


def _step(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _describe(identity: dict[str, Any]) -> str:
    parts = [f"{k} {identity[k]}" for k in IDENTITY_KEYS if k in identity]
    return ", ".join(parts) or "no identity"


def load(run_dir: Path, step: int, like: Any, expect: dict[str, Any] | None = None) -> Any:
    """Read the checkpoint at `step` into the structure of `like`.

    A damaged file, or a sidecar whose identity differs from the folder's `config.json` (updated by
    `expect`, e.g. `{"seed": 3}`), is a `WorkbenchError`."""
    leaves_path, sidecar_path = _paths(run_dir, step)
    fix = f"delete {leaves_path.parent} to start this seed over, or rerun with --force"
    try:
        meta = read_json(sidecar_path)
        data = leaves_path.read_bytes()
    except (OSError, ValueError) as e:
        raise WorkbenchError(f"checkpoint {sidecar_path} is unreadable: {e}", fix) from None
    ours = {**run_identity(run_dir), **(expect or {})}
    theirs = {k: meta[k] for k in IDENTITY_KEYS if isinstance(meta, dict) and k in meta}
    if any(theirs.get(k) != v for k, v in ours.items()):
        raise WorkbenchError(f"checkpoint {sidecar_path} belongs to another run ({_describe(theirs)}), "
                             f"not to this one ({_describe(ours)})", fix)
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise WorkbenchError(f"checkpoint {leaves_path} is corrupted (checksum mismatch)", fix)
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(data), like)
    except Exception as e:  # equinox/numpy raise several types for malformed or mismatched files
        raise WorkbenchError(f"checkpoint {leaves_path} does not match this run's model: {e}", fix) from None
