"""Fixtures of the command-line tests: `wb` (run the CLI in-process), `one_line_error` (the bad-input
contract) and `digest` (a folder's files by content, to show nothing was overwritten)."""

import hashlib
import sys
from pathlib import Path

import pytest

from workbench.run.cli import main


@pytest.fixture
def wb(capsys, monkeypatch):
    """`wb(args)` -> (exit code, stdout, stderr) of `wb *args`."""

    def call(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["wb", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out, err = capsys.readouterr()
        return exit_info.value.code, out, err

    return call


def _one_line_error(result: tuple[int, str, str], *fragments: str) -> str:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return lines[0]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def one_line_error():
    """`one_line_error(result, *fragments)`: exit code 2, one `error: ` line holding every fragment."""
    return _one_line_error


@pytest.fixture(scope="session")
def digest():
    """`digest(folder)` -> {relative path: sha256} of every file below `folder`."""
    return _digest
