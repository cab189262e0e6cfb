"""Repository-level contracts: the import direction, no torch in core, environment.yml == pyproject."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"workbench": REPO / "workbench", "workbench.experiments": REPO / "experiments",
            "workbench.theory": REPO / "theory"}

# layer -> the workbench layers it may import (DESIGN.md: core <- tasks, models <- train, interp, rasp,
# kernels, theory <- experiments <- run; report imports only core; nothing imports run).
ALLOWED = {
    "core": {"core"},
    "tasks": {"core", "tasks"},
    "models": {"core", "models"},  # holds the circuit graph type (models/circuit.py), so rasp and interp share it
    "train": {"core", "tasks", "models", "train"},
    "interp": {"core", "tasks", "models", "interp"},
    "rasp": {"core", "tasks", "models", "rasp"},
    "kernels": {"core", "tasks", "models", "kernels"},
    "theory": {"core", "tasks", "models", "theory"},
    "lens": {"core", "models", "lens"},
    "experiments": {"core", "tasks", "models", "train", "interp", "rasp", "kernels", "theory", "lens", "experiments"},
    "report": {"core", "report"},
    "run": {"core", "tasks", "models", "train", "interp", "rasp", "kernels", "theory", "lens", "experiments",
            "report", "run"},
}


def modules():
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = (package + "." + ".".join(path.relative_to(folder).with_suffix("").parts)).split(".")
            yield path, parts


def layer_of(parts: list[str]) -> str:
    return parts[1] if len(parts) > 1 and parts[1] not in ("__init__",) else "root"


def imported(path: Path, parts: list[str]):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)


def test_import_direction():
    violations = []
    for path, parts in modules():
        layer = layer_of(parts)
        if layer not in ALLOWED:
            continue
        for name in imported(path, parts):
            target = name.split(".")
            if target[0] != "workbench" or len(target) < 2 or target[1] not in ALLOWED:
                continue
            if target[1] not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(REPO)} ({layer}) imports {name}")
    assert not violations, "\n".join(violations)


def test_no_torch_import_outside_the_lens_bridge():
    for path, parts in modules():
        if layer_of(parts) == "lens":
            continue
        for name in imported(path, parts):
            assert name.split(".")[0] not in ("torch", "transformer_lens"), f"{path} imports {name}"


def _names(requirements) -> set[str]:
    return {re.split(r"[<>=!\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements if r.strip()}


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = _names(project["dependencies"]) | {n for extra in project["optional-dependencies"].values()
                                                  for n in _names(extra)}
    text = (REPO / "environment.yml").read_text()
    pip = [line.strip()[2:] for line in text.split("- pip:")[1].splitlines() if line.strip().startswith("- ")]
    listed = _names(p for p in pip if not p.startswith("-e"))
    assert listed == expected
    assert "python=3.11" in text


@pytest.mark.parametrize("path", ["README.md", "Makefile", ".ci/run", "mkdocs.yml"])
def test_setup_files_exist(path):
    assert (REPO / path).is_file()


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make report", "make test"]


def _experiment_imports() -> list[tuple[str, str, bool]]:
    """(importer, imported, at module level) for every import between modules of `experiments/`."""
    known = {".".join(parts) for path, parts in modules() if parts[:2] == ["workbench", "experiments"]}
    edges = []
    for path, parts in modules():
        if parts[:2] != ["workbench", "experiments"]:
            continue
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in imported_by(node, parts):
                name = name.removesuffix(".__init__")
                if name in known and name != ".".join(parts):
                    edges.append((".".join(parts), name, id(node) in top))
    return edges


def imported_by(node, parts: list[str]):
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = parts[: len(parts) - node.level] if node.level else []
    name = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
    yield name
    yield from (f"{name}.{alias.name}" for alias in node.names)


def test_no_import_cycle_or_hidden_import_between_experiment_modules():
    import networkx as nx

    edges = _experiment_imports()
    hidden = [f"{a} imports {b} inside a function" for a, b, top in edges if not top]
    assert not hidden, "pass what is needed as arguments instead:\n" + "\n".join(hidden)
    graph = nx.DiGraph((a, b) for a, b, _ in edges if not b.endswith("experiments") and not a.endswith("__init__"))
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles between experiment modules: {cycles}"


def test_every_experiment_module_has_a_test():
    names = [p.stem for p in (REPO / "experiments").glob("*.py") if not p.stem.startswith("_")]
    missing = [n for n in names if not (REPO / "tests" / "experiments" / f"test_{n}.py").is_file()]
    assert not missing, f"write tests/experiments/test_<name>.py (run and analyse on a tiny config) for: {missing}"


def test_no_top_level_folder_shadows_an_installed_module():
    """`python -m pytest` puts the repository root on `sys.path`, so a top-level package named like an installed
    module (e.g. `kernels`, which `transformers` imports) shadows it."""
    from importlib.metadata import packages_distributions

    installed = packages_distributions()
    folders = [p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
    clashes = {name: installed[name] for name in folders if name in installed and name != "workbench"}
    assert not clashes, f"rename or move into workbench/ these top-level packages, installed modules share their names: {clashes}"
