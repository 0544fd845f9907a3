"""The notebooks run, in small mode, on the virtualenv's Python, and are stored without outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO

NOTEBOOKS = REPO / "notebooks"
KERNEL = "python3"  # a "python" kernelspec: jupyter_client starts it with sys.executable
TIMEOUT_S = 300


def _execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(cwd)}})
    return client.execute()


def test_kernel_runs_this_python(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys; print(sys.executable)")]
    out = _execute(nb, tmp_path).cells[0].outputs[0]["text"].strip()
    assert Path(out).resolve() == Path(sys.executable).resolve()


def test_notebooks_are_built_by_the_script_and_have_no_outputs() -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import build_notebooks
    finally:
        sys.path.remove(str(NOTEBOOKS))
    assert set(build_notebooks.NOTEBOOKS) == {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    for name, cells in build_notebooks.NOTEBOOKS.items():
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert [c.source for c in nb.cells] == [src for _, src in cells], name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_in_small_mode(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DGAN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DGAN_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("DGAN_SWEEP_DIR", raising=False)
    nb = _execute(nbformat.read(NOTEBOOKS / name, as_version=4), tmp_path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{name} drew nothing"


def test_the_toy_notebook_runs_the_comparison_of_the_docs() -> None:
    # docs/results.md, "25 Gaussians": make reproduce-toy's experiment and both arms.
    import subprocess

    out = subprocess.run(["make", "-n", "-B", "reproduce-toy", "REPRO_DIR=/tmp/repro",
                          "STAMP="], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    trains = [line for line in out.splitlines() if "dgan.train" in line]
    source = "\n".join(c.source for c in
                       nbformat.read(NOTEBOOKS / "02_toy_mode_coverage.ipynb", as_version=4).cells)
    experiment = {w for line in trains for w in line.split() if w.startswith("experiment=")}
    arms = {w for line in trains for w in line.split() if w.startswith("diffusion=")}
    assert len(experiment) == 1 and len(arms) == 2, trains
    assert f'"{experiment.pop()}"' in source
    assert all(f'"{arm}"' in source for arm in arms)
    assert "has **not** been able to test that claim" in source
