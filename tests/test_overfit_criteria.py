"""The pre-registered criteria of the limited-data experiment, applied by sweep_report --overfit:
a run overfits when its FID rises from its best and D's logit gap grows; the chain is on when p
stays >= 0.5 over the second half; an arm with the chain is confirmed, refuted or inconclusive
against the plain arm, paired by seed."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from dgan.sweep_report import main as report_main
from dgan.tracking.overfit_criteria import Criteria, run_overfitting, verdict

METRIC = "fid_digits2k_full"
KIMG = [8.0 * i for i in range(1, 38)]  # 8 .. 296


def _fid_curve(best: float, rise: float) -> list[float]:
    """Falls to ``best`` at a third of the run, then rises by ``rise`` linearly."""
    turn = len(KIMG) // 3
    fall = [best + 100 * (turn - i) / turn for i in range(turn)]
    climb = [best + rise * i / (len(KIMG) - turn - 1) for i in range(len(KIMG) - turn)]
    return fall + climb


def _dynamics(gap_start: float, gap_end: float, p: float | None) -> list[dict[str, float]]:
    rows = []
    for i, k in enumerate(KIMG):
        share = i / (len(KIMG) - 1)
        rows.append({"kimg": k, "gap": gap_start + (gap_end - gap_start) * share,
                     "p": math.nan if p is None else p})
    return rows


def _records(fids: list[float]) -> list[dict[str, float]]:
    return [{"kimg": k, METRIC: f} for k, f in zip(KIMG, fids, strict=True)]


def test_a_run_that_rises_3_points_and_20_percent_with_a_growing_gap_overfits() -> None:
    row = run_overfitting(_records(_fid_curve(20.0, 5.0)), _dynamics(0.1, 1.5, None), METRIC)
    assert row["best"] == pytest.approx(20.0) and row["final"] == pytest.approx(25.0)
    assert row["rise"] == pytest.approx(5.0)
    assert row["fid_rises"] and row["gap_grows"] and row["overfits"]
    assert not row["chain_on"] and math.isnan(row["p_min_second_half"])


@pytest.mark.parametrize(("best", "rise", "gap_end", "why"), [
    (20.0, 3.5, 1.5, "17 % is under 20 %"),
    (10.0, 2.5, 1.5, "25 % but under 3 points"),
    (20.0, 5.0, 0.0, "the gap shrinks"),
])
def test_each_condition_is_needed(best: float, rise: float, gap_end: float, why: str) -> None:
    row = run_overfitting(_records(_fid_curve(best, rise)), _dynamics(0.1, gap_end, None),
                          METRIC)
    assert not row["overfits"], why


def test_the_chain_is_on_only_when_p_stays_above_half_over_the_second_half() -> None:
    on = run_overfitting(_records(_fid_curve(20.0, 0.0)), _dynamics(0.1, 1.0, 0.7), METRIC)
    assert on["chain_on"] and on["p_min_second_half"] == pytest.approx(0.7)
    dips = _dynamics(0.1, 1.0, 0.7)
    dips[-3]["p"] = 0.45  # one late record under 0.5
    off = run_overfitting(_records(_fid_curve(20.0, 0.0)), dips, METRIC)
    assert not off["chain_on"] and off["p_min_second_half"] == pytest.approx(0.45)
    early = _dynamics(0.1, 1.0, 0.7)
    early[2]["p"] = 0.0  # a first-half dip does not count
    assert run_overfitting(_records(_fid_curve(20.0, 0.0)), early, METRIC)["chain_on"]


def _arm(finals: list[float], chain_on: bool) -> dict[int, dict[str, object]]:
    return {seed: {"final": f, "chain_on": chain_on, "overfits": True}
            for seed, f in enumerate(finals)}


def test_verdicts_follow_the_pooled_sd_rule_paired_by_seed() -> None:
    plain = _arm([30.0, 32.0, 28.0, 31.0], False)
    # sd about 1.7 in each arm: the bound is about 3.4.
    better = verdict(plain, _arm([20.0, 22.0, 18.0, 21.0], True))
    assert better["verdict"] == "confirmed" and better["paired_difference"] == pytest.approx(10)
    same = verdict(plain, _arm([29.0, 33.0, 27.0, 31.5], True))
    assert same["verdict"] == "refuted"
    off = verdict(plain, _arm([20.0, 22.0, 18.0, 21.0], False))
    assert off["verdict"] == "inconclusive" and "chain on in 0 of 4" in off["why"]
    worse = verdict(plain, _arm([40.0, 42.0, 38.0, 41.0], True))
    assert worse["verdict"] == "inconclusive"
    assert verdict(plain, _arm([20.0], True))["verdict"] == "inconclusive"
    assert Criteria().separation_sd == 2.0 and Criteria().min_runs == 3


def _job(sweep: Path, name: str, overrides: list[str], fids: list[float],
         dynamics: list[dict[str, float]]) -> None:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "augment": None, "metrics": {"higher_is_better": False}}))
    (job / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(fids)))
    (job / "diagnostics").mkdir()
    with (job / "diagnostics" / "dynamics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["kimg", "gap", "p"])
        writer.writeheader()
        writer.writerows(dynamics)


def test_sweep_report_overfit_writes_the_table_and_prints_the_verdict(tmp_path: Path,
                                                                        capsys) -> None:
    for seed in range(4):
        _job(tmp_path, f"plain/{seed}", ["diffusion=none", f"seed={seed}"],
             _fid_curve(20.0 + seed, 8.0), _dynamics(0.1, 1.5, None))
        _job(tmp_path, f"chain/{seed}", ["diffusion=stylegan2", f"seed={seed}"],
             _fid_curve(18.0 + seed, 0.5), _dynamics(0.1, 0.4, 0.6))
    assert report_main([str(tmp_path), "--group-by", "diffusion", "--overfit"]) == 0
    out = capsys.readouterr().out
    assert "diffusion=none: overfits in 4 of 4, chain on in 0 of 4" in out
    assert "diffusion=stylegan2: overfits in 0 of 4, chain on in 4 of 4" in out
    assert "diffusion=stylegan2 against diffusion=none: CONFIRMED" in out
    with (tmp_path / "sweep_overfit.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["overfits"] for r in rows} == {"True", "False"}
    assert {r["seed"] for r in rows} == {"0", "1", "2", "3"}


def test_overfit_without_the_diffusion_key_stops_before_reading_jobs(tmp_path: Path,
                                                                     capsys) -> None:
    assert report_main([str(tmp_path / "missing"), "--overfit"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--group-by diffusion" in err


def test_arms_that_differ_in_a_chain_setting_are_each_compared_with_the_plain_arm(
        tmp_path: Path, capsys) -> None:
    # The plain runs have no diffusion.clean_fraction (blank): it matches either chain arm.
    for seed in range(4):
        _job(tmp_path, f"plain/{seed}", ["diffusion=none", f"seed={seed}"],
             _fid_curve(20.0 + seed, 8.0), _dynamics(0.1, 1.5, None))
        _job(tmp_path, f"half/{seed}", ["diffusion=stylegan2", "diffusion.clean_fraction=0.5",
                                        f"seed={seed}"],
             _fid_curve(20.0 + seed, 8.5), _dynamics(0.1, 1.6, 0.99))
        _job(tmp_path, f"none_clean/{seed}", ["diffusion=stylegan2",
                                              "diffusion.clean_fraction=0", f"seed={seed}"],
             _fid_curve(18.0 + seed, 0.5), _dynamics(0.1, 0.4, 0.7))
    assert report_main([str(tmp_path), "--group-by", "diffusion,diffusion.clean_fraction",
                        "--overfit"]) == 0
    out = capsys.readouterr().out
    assert ("diffusion=stylegan2 diffusion.clean_fraction=0.5 against diffusion=none: REFUTED"
            in out)
    assert ("diffusion=stylegan2 diffusion.clean_fraction=0 against diffusion=none: CONFIRMED"
            in out)


def test_group_by_takes_a_config_value_no_job_overrides_and_refuses_a_typo(
        tmp_path: Path, capsys) -> None:
    for seed in range(2):
        _job(tmp_path, f"plain/{seed}", ["diffusion=none", f"seed={seed}"],
             _fid_curve(20.0, 8.0), _dynamics(0.1, 1.5, None))
        _job(tmp_path, f"chain/{seed}", ["diffusion=stylegan2", f"seed={seed}"],
             _fid_curve(20.0, 8.0), _dynamics(0.1, 1.5, 0.9))
        config = tmp_path / "chain" / str(seed) / ".hydra" / "config.yaml"
        config.write_text(yaml.safe_dump({"seed": seed, "diffusion": {"clean_fraction": 0.5},
                                          "metrics": {"higher_is_better": False}}))
    assert report_main([str(tmp_path), "--group-by", "diffusion,diffusion.clean_fraction",
                        "--curves"]) == 0
    groups = (tmp_path / "sweep_groups.md").read_text()
    assert "| stylegan2 | 0.5 |" in groups
    # The curves' groups are labelled the same way; a blank value is left out.
    with (tmp_path / "sweep_curves.csv").open() as f:
        labels = {row["group"] for row in csv.DictReader(f)}
    assert labels == {"diffusion=none", "diffusion=stylegan2, diffusion.clean_fraction=0.5"}
    capsys.readouterr()
    assert report_main([str(tmp_path), "--group-by", "diffusion,diffusion.clean_fractoin"]) == 2
    err = capsys.readouterr().err
    assert "diffusion.clean_fractoin" in err and "no job overrides it" in err
    # The printed arms leave a blank key out, as the labels do.
    capsys.readouterr()
    assert report_main([str(tmp_path), "--group-by", "diffusion,diffusion.clean_fraction",
                        "--overfit"]) == 0
    out = capsys.readouterr().out
    assert "diffusion=none: overfits in" in out and "clean_fraction=:" not in out


def test_an_arm_of_another_multirun_is_reported_beside_these(tmp_path: Path, capsys) -> None:
    # reproduce-tcond reuses reproduce-overfit's diffusion arm: two directories, one report.
    overfit, tcond = tmp_path / "overfit" / "n100", tmp_path / "tcond" / "n100"
    for seed in range(2):
        _job(overfit, f"stylegan2/{seed}", ["diffusion=stylegan2", f"seed={seed}"],
             _fid_curve(20.0, 8.0), _dynamics(0.1, 1.5, 0.9))
        _job(tcond, f"none/{seed}", ["diffusion=stylegan2", f"seed={seed}",
                                     "model.discriminator.t_conditioning=none"],
             _fid_curve(30.0, 8.0), _dynamics(0.1, 1.5, 0.9))
        _job(tmp_path / "plain", str(seed), ["diffusion=none", f"seed={seed}"],
             _fid_curve(10.0, 8.0), _dynamics(0.1, 1.5, None))
    assert report_main([str(tcond), str(overfit / "stylegan2"), "--group-by",
                        "diffusion,model.discriminator.t_conditioning", "--curves",
                        "--overfit"]) == 0
    out = capsys.readouterr().out
    assert "4 job(s)" in out
    with (tcond / "sweep_report.csv").open() as f:
        jobs = {row["job"] for row in csv.DictReader(f)}
    # named from the directories' common parent, so the two arms' job 0 stay apart
    assert jobs == {f"{arm}/{seed}" for arm in ("tcond/n100/none", "overfit/n100/stylegan2")
                    for seed in range(2)}
    groups = (tcond / "sweep_groups.md").read_text()
    assert "| stylegan2 | none |" in groups and "| stylegan2 |  |" in groups
    assert {p.name for p in tcond.iterdir()} >= {"sweep_groups.md", "sweep_curves.csv",
                                                 "sweep_overfit.csv"}
    assert not list((overfit / "stylegan2").glob("sweep_*"))
    # a directory inside another counts its jobs once
    assert report_main([str(tcond), str(tcond / "none")]) == 0
    assert "2 job(s)" in capsys.readouterr().out
    capsys.readouterr()
    assert report_main([str(tcond), str(tmp_path / "missing")]) == 2
    assert "missing: not a directory" in capsys.readouterr().err


def test_a_job_continued_with_resume_is_no_setting_of_its_own(tmp_path: Path) -> None:
    for seed in range(2):
        _job(tmp_path, f"chain/{seed}", ["diffusion=stylegan2", f"seed={seed}",
                                         *(["resume=auto"] if seed else [])],
             _fid_curve(20.0, 8.0), _dynamics(0.1, 1.5, 0.9))
    assert report_main([str(tmp_path)]) == 0
    with (tmp_path / "sweep_report.csv").open() as f:
        header = next(csv.reader(f))
    assert "seed" in header and "resume" not in header
