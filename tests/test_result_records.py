"""The tables in docs/results that ship their runs' records (docs/results/runs: each run's
configs, metrics.jsonl and diagnostics tables, without checkpoints or pictures) are what
sweep_report makes of those records, so a table cannot drift from the runs behind it."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from dgan import sweep_report
from dgan.sweep_report import main as report_main

from .conftest import REPO
from .test_reproduce import _commands

RESULTS = REPO / "docs" / "results"
RUNS = RESULTS / "runs"
TCOND = RUNS / "tcond" / "n100_g0_k300"
# the directories make reproduce-tcond reports: its own runs and, as the unconditional raw
# arm, reproduce-overfit's diffusion arm
REPORTED = [TCOND, RUNS / "overfit" / "n100_g0_k300" / "stylegan2"]
ARMS = {"cond_raw", "cond_separate", "none", "normalized", "sinusoidal", "stylegan2"}


def _target_report_flags(target: str) -> list[str]:
    """The flags of the sweep_report command that ``make TARGET`` ends with."""
    words = next(w for w in _commands(target) if "dgan.sweep_report" in w)
    return words[next(i for i, w in enumerate(words) if w.startswith("--")):]


# the report's flags are the Makefile's, so the tables are what make reproduce-tcond reports
TCOND_REPORT = _target_report_flags("reproduce-tcond")
# committed table -> the file of the report it is
TABLES = {
    "tcond_jobs.csv": sweep_report.CSV_NAME,
    "tcond_groups.md": sweep_report.GROUPS_MD,
    "tcond_compare.csv": sweep_report.COMPARE_CSV,
}
SEEDS_PER_ARM = 4
FINAL_KIMG = 300


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The report of the measured arms' records, run once."""
    out = tmp_path_factory.mktemp("report")
    assert report_main([*map(str, REPORTED), *TCOND_REPORT, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("table", TABLES)
def test_a_committed_table_is_the_report_of_its_records(table: str, report: Path) -> None:
    made = report / TABLES[table]
    assert made.read_text(encoding="utf-8") == (RESULTS / table).read_text(encoding="utf-8")


def test_every_arm_has_its_seeds_and_every_run_finished() -> None:
    with (RESULTS / "tcond_jobs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    arms = Counter(row["job"].split("/")[-3] for row in rows)  # ARM/seedsA-B/JOB
    assert set(arms) == ARMS, arms
    assert min(arms.values()) >= SEEDS_PER_ARM, arms
    assert all(float(row["final_kimg"]) == FINAL_KIMG for row in rows)
    # nothing but small text records is shipped
    shipped = {p.suffix for p in RUNS.rglob("*") if p.is_file()}
    assert shipped <= {".yaml", ".json", ".jsonl", ".csv", ".log"}, shipped
