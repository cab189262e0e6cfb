"""Atomic writes: files get the mode the umask gives, and what a killed write leaves is cleared."""

import os

import pytest

from workbench.core.io import remove_stale_temps, write_json_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_of_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "a" / "summary.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "summary.json").stat().st_mode & 0o777 == mode


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".step-00000020.eqx.k2j4.tmp"
    stale.write_bytes(b"half")
    keep = [tmp_path / "metrics.jsonl", tmp_path / "checkpoints" / "step-00000020.json", tmp_path / ".hidden"]
    for p in keep:
        p.write_text("{}")
    assert remove_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in keep)
