"""sweep_report prints its tables, reports a key a job left at its default at that default, and
gives the seeds no panel of their own."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml

from dgan import sweep_report
from dgan.sweep_report import main as report_main

METRIC = "fid_digits2k_full"


def _job(sweep_dir: Path, num: int, overrides: list[str], fid: float) -> None:
    """A finished job as Hydra leaves it: overrides, config, choices, metrics.jsonl."""
    job = sweep_dir / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    diffusion = next((o.split("=")[1] for o in overrides if o.startswith("diffusion=")),
                     "stylegan2")  # the experiment's own choice when not overridden
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "dataset": {"max_size": None}, "metrics": {"higher_is_better": None}}))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": {"diffusion": diffusion,
                                           "hydra/launcher": "basic"}}}}))
    (job / "metrics.jsonl").write_text(json.dumps({"kimg": 80.0, METRIC: fid}) + "\n")


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    # Two seeds of the default diffusion (not overridden) and two without it.
    for num, (overrides, fid) in enumerate([
            (["seed=0"], 5.0), (["seed=1"], 7.0),
            (["diffusion=none", "seed=0"], 6.0), (["diffusion=none", "seed=1"], 8.0)]):
        _job(tmp_path, num, overrides, fid)
    return tmp_path


def test_the_tables_are_printed_with_the_default_filled(sweep: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert report_main([str(sweep), "--group-by", "diffusion"]) == 0
    out = capsys.readouterr().out
    assert METRIC in out.splitlines()[0]
    header, *lines = [line.split() for line in out.splitlines()[1:6]]
    jobs = [dict(zip(header, line, strict=True)) for line in lines]
    assert [(j["job"], j["diffusion"], j["seed"], j["final"]) for j in jobs] == [
        ("0", "stylegan2", "0", "5"), ("1", "stylegan2", "1", "7"),  # the default, not blank
        ("2", "none", "0", "6"), ("3", "none", "1", "8")]
    assert f"| diffusion | {METRIC} |" in out
    assert "| stylegan2 | 6 ± 1.414 (n=2) |" in out
    assert "| none | 7 ± 1.414 (n=2) |" in out
    assert "|  |" not in (sweep / sweep_report.GROUPS_MD).read_text()


def test_the_seeds_get_no_panel(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    panels: list[str] = []
    original = matplotlib.figure.Figure.savefig

    def record(fig: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        panels.extend(ax.get_xlabel() for ax in fig.axes)
        original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    sweep_report.report(sweep)
    assert panels == ["diffusion"]


def test_out_takes_every_file_and_leaves_the_multirun_untouched(sweep: Path, tmp_path: Path
                                                                ) -> None:
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    out = tmp_path.parent / f"{tmp_path.name}_report" / "nested"
    assert report_main([str(sweep), "--group-by", "diffusion", "--curves", "--out",
                        str(out)]) == 0
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before
    assert {p.name for p in out.iterdir()} == {
        sweep_report.CSV_NAME, sweep_report.PNG_NAME, sweep_report.GROUPS_CSV,
        sweep_report.GROUPS_MD, sweep_report.GROUPS_PNG, sweep_report.CURVES_CSV,
        sweep_report.CURVES_PNG}


def test_out_that_is_a_file_is_refused_before_any_job_is_read(
        sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.txt"
    target.write_text("not a directory")
    assert report_main([str(sweep / "no-such-dir"), "--out", str(target)]) == 2
    assert f"--out={target}: is a file" in capsys.readouterr().err


@pytest.mark.parametrize(("none_fids", "reading"), [
    ((6.0, 8.0), "within the bound"),  # +1 per seed; 2 pooled sd = 2.83
    ((15.0, 17.0), "worse"),  # +10 per seed: a higher FID
    ((1.0, 3.5), "better")])  # -4 and -3.5; pooled sd 1.59, bound 3.18
def test_compare_reads_each_arm_against_its_base_paired_by_seed(
        tmp_path: Path, none_fids: tuple[float, float], reading: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    for num, (overrides, fid) in enumerate([
            (["seed=0"], 5.0), (["seed=1"], 7.0),
            (["diffusion=none", "seed=1"], none_fids[1]),  # out of order: paired by seed
            (["diffusion=none", "seed=0"], none_fids[0])]):
        _job(tmp_path, num, overrides, fid)
    out = tmp_path / "report"
    assert report_main([str(tmp_path), "--group-by", "diffusion", "--compare",
                        "diffusion=stylegan2", "--out", str(out)]) == 0
    with (out / sweep_report.COMPARE_CSV).open() as f:
        (row,) = list(csv.DictReader(f))
    difference = ((none_fids[0] - 5.0) + (none_fids[1] - 7.0)) / 2
    assert (row["diffusion"], row["against"], row["metric"], row["seeds"]) == (
        "none", "stylegan2", METRIC, "2")
    assert float(row["difference"]) == pytest.approx(difference)
    spread = math.sqrt((statistics.variance(none_fids) + statistics.variance([5.0, 7.0])) / 2)
    assert float(row["bound"]) == pytest.approx(2 * spread)
    assert row["reading"] == reading
    assert f"diffusion=none against stylegan2 (), 2 seeds: {METRIC}" in capsys.readouterr().out


def test_compare_needs_its_key_among_the_groups_and_a_base(
        sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main([str(sweep), "--group-by", "diffusion", "--compare", "seed=0"]) == 2
    assert "--compare=seed=0: seed is not a --group-by key (diffusion)" in capsys.readouterr().err
    assert report_main([str(sweep), "--group-by", "diffusion", "--compare", "diffusion"]) == 2
    assert "--compare=diffusion: give KEY=BASE" in capsys.readouterr().err
    assert report_main([str(sweep), "--group-by", "diffusion", "--compare",
                        "diffusion=ada"]) == 2
    assert "no group of" in capsys.readouterr().err
