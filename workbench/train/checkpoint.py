"""Atomic checkpoints: `checkpoints/step-XXXXXXXX.eqx` (equinox leaves of (model, opt_state)) plus a
JSON sidecar with the step, config and the file's sha256. A checkpoint counts only once its sidecar
exists, so a kill at any moment leaves the previous checkpoint usable. The newest `keep` are kept."""

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


def save(run_dir: Path, step: int, tree: Any, meta: dict[str, Any], keep: int = KEEP) -> None:
    """Write the checkpoint of `tree` at `step`, then drop all but the newest `keep`."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    data = buffer.getvalue()
    leaves_path, sidecar_path = _paths(run_dir, step)
    write_bytes_atomic(leaves_path, data)
    write_json_atomic(sidecar_path, {**meta, "step": step, "file": leaves_path.name,
                                     "sha256": hashlib.sha256(data).hexdigest()})
    for old in steps(run_dir)[:-keep]:
        for path in _paths(run_dir, old):
            path.unlink(missing_ok=True)


def steps(run_dir: Path) -> list[int]:
    """Steps with a complete checkpoint (sidecar present), ascending."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("step-*.json"))


def load(run_dir: Path, step: int, like: Any) -> Any:
    """Read the checkpoint at `step` into the structure of `like`; a damaged file is a `WorkbenchError`."""
    leaves_path, sidecar_path = _paths(run_dir, step)
    fix = f"delete {leaves_path.parent} to start this seed over, or rerun with --force"
    try:
        meta = read_json(sidecar_path)
        data = leaves_path.read_bytes()
    except (OSError, ValueError) as e:
        raise WorkbenchError(f"checkpoint {sidecar_path} is unreadable: {e}", fix) from None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise WorkbenchError(f"checkpoint {leaves_path} is corrupted (checksum mismatch)", fix)
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(data), like)
    except Exception as e:  # equinox/numpy raise several types for malformed or mismatched files
        raise WorkbenchError(f"checkpoint {leaves_path} does not match this run's model: {e}", fix) from None


def read_meta(run_dir: Path, step: int) -> dict[str, Any]:
    return read_json(_paths(run_dir, step)[1])
