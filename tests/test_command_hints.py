"""What the commands print: help pages that suggest what works on their own generators, the
training's progress bar whole in a log file, and run directories where the README says."""

from __future__ import annotations

import io
import math
import re
import types

import pytest

from dgan import style_mixing
from dgan.callbacks.progress import KimgProgress
from dgan.config.cli_args import HELP_WIDTH

from .conftest import REPO, compose_train

# Longer than the 80 columns rich assumes without a terminal.
LONG_STATS = "sec/kimg 363.44  p 1.000 T 100  lossG 0.647  lossD 1.31  loss/r1 0.0012  end"


def test_style_mixing_help_suggests_layers_its_generators_have(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert style_mixing.main(["--help"]) == 0
    page = capsys.readouterr().out
    text = " ".join(page.split())
    ranges = re.findall(r"(\d+)-(\d+) at (\d+) px", text)
    assert ranges, text
    for _, last, resolution in ranges:
        num_ws = 2 * int(math.log2(int(resolution))) - 2
        assert int(last) < num_ws, (last, resolution)
    # The descriptions are wrapped, not cut after their first line.
    assert "4-9 at 64 px" in text
    assert all(len(line) <= HELP_WIDTH for line in page.splitlines() if line.startswith("      "))


def test_the_last_bar_line_is_whole_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()  # not a terminal, as a pipe or a batch job's output file
    monkeypatch.setattr("sys.stdout", log)
    bar = KimgProgress(refresh_rate=1)
    module = types.SimpleNamespace(total_kimg=0.04, kimg=0.04)
    bar._start_bar(module)
    bar._progress.update(bar._task, completed=0.04, stats=LONG_STATS)
    bar._stop_bar()
    last = log.getvalue().rstrip("\n").splitlines()[-1]
    assert len(last) > 80
    assert last.startswith("train ") and "0.0/0.04 kimg" in last and last.endswith(LONG_STATS)


@pytest.mark.parametrize(("overrides", "said"), [
    (["experiment=ring8"], "outputs/EXPERIMENT/DATE_TIME/"),
    (["experiment=ring8", "debug=default"], "outputs/debug/EXPERIMENT/DATE_TIME/"),
])
def test_run_directories_are_where_the_readme_says(overrides: list[str], said: str) -> None:
    cfg = compose_train(overrides)
    where = said.replace("EXPERIMENT", "ring8").removesuffix("DATE_TIME/")
    assert str(cfg.hydra.run.dir).startswith(where)
    assert f"`{said}`" in (REPO / "README.md").read_text()
