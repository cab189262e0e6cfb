"""Run-folder I/O: atomic JSON writes and the `metrics.jsonl` log (step, split, name, value).

An atomic write goes to `.<name>.<random>.tmp` beside its target and is renamed over it; the file gets
the mode the user's umask gives a new file (not `mkstemp`'s 0600). A writer killed mid-write leaves
only such a temporary file, which `remove_stale_temps` clears before a run resumes.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any


TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it and restore it
    os.umask(mask)
    return mask


def is_temp(path: Path) -> bool:
    """Whether `path` is the temporary file of an atomic write (`.<name>.<random>.tmp`)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX) and path.is_file()


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files that killed atomic writes left anywhere under `folder`; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(f".*{TEMP_SUFFIX}") if is_temp(p)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file (a torn last line from a killed writer is dropped)."""
    rows = []
    if not Path(path).exists():
        return rows
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            rows.append(json.loads(line))
    return rows


class MetricsLog:
    """Appends `{"step", "split", "name", "value"}` rows to `metrics.jsonl`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        lines = "".join(
            json.dumps({"step": step, "split": split, "name": name, "value": float(value)}) + "\n"
            for name, value in values.items()
        )
        with open(self.path, "a") as f:
            f.write(lines)

    def truncate_after(self, step: int) -> None:
        """Keep only rows with `row.step <= step` (used when resuming from a checkpoint at `step`; a
        negative `step` empties the log)."""
        rows = [r for r in read_jsonl(self.path) if r["step"] <= step]
        write_bytes_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows).encode())

    def rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)
