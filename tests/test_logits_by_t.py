"""sweep_report --by-t: D's mean logits per bucket of t, per arm, over the halves of the runs
(tracking/logits_by_t.py, read from each run's diagnostics/d_by_t.csv)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from dgan.sweep_report import main as report_main
from dgan.tracking.logits_by_t import group_profiles, read_logits_by_t, t_profile

COLUMNS = ["kimg", "T", "bucket", "t_lo", "t_hi", "real_logit", "fake_logit", "real_acc",
           "fake_acc", "acc"]


def _job(root: Path, name: str, overrides: list[str], slope: float, offset: float = 0.0,
         kimgs: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0)) -> Path:
    """A run whose D gives real logit ``offset + slope * (10 - position)`` and fake ``-1`` at
    every evaluation; T is 1000, ten buckets and the clean one."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "metrics.jsonl").write_text("".join(f'{{"kimg": {k}, "fid": 30.0}}\n' for k in kimgs))
    (job / "diagnostics").mkdir()
    with (job / "diagnostics" / "d_by_t.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for kimg in kimgs:
            for position in range(11):
                lo, hi = (0, 0) if position == 0 else (100 * position - 99, 100 * position)
                bucket = "0" if position == 0 else f"{lo}-{hi}"
                writer.writerow([kimg, 1000, bucket, lo, hi, offset + slope * (10 - position),
                                 -1.0, 1.0, 1.0, 1.0])
    return job


def test_a_run_reads_as_positions_with_the_gap(tmp_path: Path) -> None:
    rows = read_logits_by_t(_job(tmp_path, "0", ["seed=0"], slope=2.0))
    assert len(rows) == 44 and [r["position"] for r in rows[:12]] == [*range(11), 0]
    assert rows[1]["gap"] == pytest.approx(2.0 * 9 + 1.0)
    profile = t_profile(rows)
    # kimg 10 and 20 are the first half of a 40-kimg run, 30 and 40 the second
    assert set(profile) == {(h, p) for h in ("first", "second") for p in range(11)}
    assert profile[("second", 10)]["gap"] == pytest.approx(1.0)
    assert profile[("second", 10)]["t_lo"] == 901
    assert read_logits_by_t(tmp_path / "absent") == []


def test_an_arm_is_the_mean_and_std_over_its_runs() -> None:
    a = {("second", 1): {"real_logit": 1.0, "fake_logit": -1.0, "gap": 2.0, "acc": 1.0,
                         "t_lo": 1.0, "t_hi": 100.0}}
    b = {("second", 1): {**a[("second", 1)], "real_logit": 3.0, "gap": 4.0}}
    (row,) = group_profiles([a, b])
    assert row["n"] == 2 and row["gap_mean"] == pytest.approx(3.0)
    assert row["gap_std"] == pytest.approx(math.sqrt(2.0))
    (one,) = group_profiles([a])
    assert math.isnan(one["gap_std"])


def test_sweep_report_by_t_writes_the_table_and_says_where_d_depends_on_t(
        tmp_path: Path, capsys) -> None:
    for seed in range(2):
        _job(tmp_path, f"flat/{seed}", ["model.discriminator.t_conditioning=none",
                                        f"seed={seed}"], slope=0.0, offset=5.0 + seed)
        _job(tmp_path, f"steep/{seed}", ["model.discriminator.t_conditioning=sinusoidal",
                                         f"seed={seed}"], slope=1.0)
    assert report_main([str(tmp_path), "--group-by", "model.discriminator.t_conditioning",
                        "--by-t"]) == 0
    out = capsys.readouterr().out
    assert ("model.discriminator.t_conditioning=none: D's real-fake logit gap, second half "
            "(2 runs): clean 6.50 ± 0.71, lowest t 6.50 ± 0.71, highest t 6.50 ± 0.71") in out
    assert "sinusoidal: D's real-fake logit gap, second half (2 runs): clean 11.00 ± 0.00, " \
           "lowest t 10.00 ± 0.00, highest t 1.00 ± 0.00" in out
    with (tmp_path / "sweep_by_t.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 11  # groups x halves x positions
    assert (tmp_path / "sweep_by_t.png").stat().st_size > 0


def test_by_t_without_diagnostics_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job / "metrics.jsonl").write_text('{"kimg": 4, "fid": 30.0}\n')
    assert report_main([str(tmp_path), "--by-t"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "diagnostics/d_by_t.csv" in err
