"""The layers of pyproject.toml's import contract hold, a new upward import is refused, and no
two dgan modules import each other in a circle (imports inside functions included)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) \
    or shutil.which("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the package under ``root``/src with ``root``/pyproject.toml's contract."""
    assert LINT_IMPORTS, "lint-imports is missing: pip install import-linter (make install does)"
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_is_kept() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("core/errors.py", "dgan.train"),              # a foundation importing a command
    ("files/atomic.py", "dgan.networks.stylegan2"),  # files below networks
    ("networks/mlp.py", "dgan.diffusion.process"),   # networks below the diffusion
    ("project.py", "dgan.generate"),               # one command importing another
])
def test_an_upward_import_is_refused(tmp_path: Path, module: str, upward: str) -> None:
    shutil.copytree(SRC / "dgan", tmp_path / "src" / "dgan",
                    ignore=shutil.ignore_patterns("__pycache__", "conf"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "dgan" / module
    target.write_text(target.read_text() + f"\n\ndef _upward() -> None:\n    import {upward}\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert f"dgan.{module[:-3].replace('/', '.')} -> {upward}" in result.stdout


def _module_graph() -> dict[str, set[str]]:
    """dgan module -> the dgan modules it imports, wherever the import statement sits."""
    modules = {}
    for path in (SRC / "dgan").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str, attr: str | None = None) -> str | None:
        if attr and f"{name}.{attr}" in modules:
            return f"{name}.{attr}"
        return name if name in modules else None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            found: list[str | None] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [resolve(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found = [resolve(alias.name) for alias in node.names]
            graph[name] |= {t for t in found if t and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_dgan_modules() -> None:
    graph = _module_graph()
    assert len(graph) > 100  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
