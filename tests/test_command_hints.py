"""What the commands' help pages and errors suggest works on the commands' own generators."""

from __future__ import annotations

import math
import re

import pytest

from dgan import style_mixing
from dgan.config.cli_args import HELP_WIDTH


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
