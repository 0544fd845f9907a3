"""The package layout shows the architecture: commands at the top, one package per concern
below, and nothing below importing a command."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dgan"
COMMANDS = {"train", "generate", "evaluate", "bench", "bench_gpu", "sweep_report", "convert",
            "calibrate", "project", "style_mixing", "video"}


def test_top_level_holds_only_the_commands() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == COMMANDS | {"__init__"}


def test_no_package_imports_a_command() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [f"{path.relative_to(PACKAGE)}: {name}" for name in names
                          if name in {f"dgan.{c}" for c in COMMANDS}]
    assert offenders == []
