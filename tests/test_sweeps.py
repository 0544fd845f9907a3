"""Sweeps (grid and Optuna), the sweep report, the SLURM launcher and the launch checks."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from dgan.config.launch import check_launch, check_slurm_world_size
from dgan.core.errors import ConfigError
from dgan.files.run_files import read_metrics
from dgan.sweep_report import main as report_main

from .conftest import REPO, compose_train

TINY = [
    "experiment=gaussians25",
    "kimg=0.3",
    "model.batch_size=64",
    "model.generator.hidden=32",
    "model.discriminator.hidden=32",
    "metrics.every_kimg=0.1",
    "metrics.batch_size=500",
    "callbacks.progress=null",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_SILENT": "true"}


def _exit_recorded(wandb_file: Path) -> bool:
    """Whether a W&B offline run was finished (its log ends the run with an exit record)."""
    from wandb.proto import wandb_internal_pb2 as pb

    from dgan.tracking.wandb_offline import read_chunks

    for data in read_chunks(wandb_file.read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def test_grid_multirun_then_report(tmp_path: Path) -> None:
    from dgan.tracking.wandb_offline import find_offline_runs, read_offline_run

    sweep_dir = tmp_path / "gaussians25" / "launch1"
    # The grid's own rows for t_max and d_target are replaced by single values and sigma by two:
    # two jobs, each a W&B offline run in the sweep's group.
    cmd = [sys.executable, "-m", "dgan.train", "-m", "hparams_search=diffusion_grid", *TINY,
           "diffusion.noise_std=0.05,0.5", "diffusion.t_max=50", "adaptive.d_target=0.6",
           "logger=wandb", "logger.wandb.mode=offline", f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"[dgan] multirun directory: {sweep_dir}") == 2  # one per job

    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    records = {job.name: read_metrics(job) for job in jobs}
    for job in jobs:
        assert records[job.name] and "modes_covered" in records[job.name][-1]
        assert f"diffusion.noise_std={'0.05' if job.name == '0' else '0.5'}" in (
            job / ".hydra" / "overrides.yaml").read_text()
    runs = [read_offline_run(f) for f in find_offline_runs(sweep_dir)]
    assert len(runs) == 2 and runs[0].run_id != runs[1].run_id
    assert sorted(r.path.parents[2].name for r in runs) == ["0", "1"]  # one run per job dir
    assert {r.group for r in runs} == {"gaussians25-launch1"}
    assert all(_exit_recorded(r.path) for r in runs)  # each job finished its W&B run

    # `python -m dgan.sweep_report DIR` is `sys.exit(main([DIR]))`; in-process saves an import.
    assert report_main([str(sweep_dir)]) == 0
    with (sweep_dir / "sweep_report.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["job", "diffusion.noise_std", "metric", "final", "final_kimg",
                                 "best", "best_kimg", "evaluations"]
    assert [(r["job"], float(r["diffusion.noise_std"])) for r in rows] == [("0", 0.05), ("1", 0.5)]
    for row in rows:
        evaluations = records[row["job"]]
        values = [e["modes_covered"] for e in evaluations]
        assert row["metric"] == "modes_covered"
        assert float(row["final"]) == values[-1]
        assert float(row["final_kimg"]) == evaluations[-1]["kimg"]
        assert float(row["best"]) == max(values)  # modes covered: higher is better
        first_best = next(e for e in evaluations if e["modes_covered"] == max(values))
        assert float(row["best_kimg"]) == first_best["kimg"]
        assert int(row["evaluations"]) == len(evaluations)
    png = (sweep_dir / "sweep_report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def _fake_job(sweep_dir: Path, num: int, overrides: list[str],
              evaluations: list[dict[str, float]]) -> None:
    job = sweep_dir / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "config.yaml").write_text("metrics:\n  higher_is_better: null\n")
    if evaluations:
        (job / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evaluations))


def test_report_of_a_grid_with_a_lower_is_better_metric(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    combos = list(itertools.product([0.05, 0.5], [500, 1000]))
    for num, (sigma, t_max) in enumerate(combos):
        evals = [{"kimg": 1.0, "fid50k_full": 40.0 + num, "kid50k_full": 0.1},
                 {"kimg": 2.0, "fid50k_full": 30.0 - num, "kid50k_full": 0.05},
                 {"kimg": 3.0, "fid50k_full": 35.0, "kid50k_full": 0.04}]
        _fake_job(sweep, num, ["experiment=cifar10_stylegan2", f"diffusion.noise_std={sigma}",
                               f"diffusion.t_max={t_max}"], evals)
    _fake_job(sweep, 10, ["experiment=cifar10_stylegan2", "diffusion.noise_std=0.1",
                          "diffusion.t_max=500"], [])  # failed before its first evaluation
    out_csv, out_png = tmp_path / "out" / "t.csv", tmp_path / "out" / "p.png"
    assert report_main([str(sweep), "--csv", str(out_csv), "--png", str(out_png)]) == 0
    assert "no fid50k_full yet for job(s) 10" in capsys.readouterr().err
    rows = list(csv.DictReader(out_csv.open()))
    # Natural job order (10 after 3); experiment is the same everywhere, so not a swept key.
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "10"]
    assert list(rows[0]) == ["job", "diffusion.noise_std", "diffusion.t_max", "metric", "final",
                             "final_kimg", "best", "best_kimg", "evaluations"]
    for num, row in enumerate(rows[:4]):
        assert (float(row["diffusion.noise_std"]), int(row["diffusion.t_max"])) == combos[num]
        assert row["metric"] == "fid50k_full" and float(row["final"]) == 35.0
        assert float(row["best"]) == 30.0 - num and float(row["best_kimg"]) == 2.0  # lowest
    assert rows[4]["final"] == "" and rows[4]["evaluations"] == "0"
    assert out_png.read_bytes().startswith(b"\x89PNG")

    # Another metric, direction and key chosen by flag.
    assert report_main([str(sweep), "--metric", "kid50k_full", "--direction", "higher",
                        "--keys", "diffusion.t_max", "--csv", str(out_csv),
                        "--png", str(out_png)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0])[:2] == ["job", "diffusion.t_max"]
    assert rows[0]["metric"] == "kid50k_full" and float(rows[0]["best"]) == 0.1


def test_group_by_reports_mean_std_and_n_over_seeds(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    finals = {("stylegan2", 0): (100.0, 0.5), ("stylegan2", 1): (110.0, 0.7),
              ("none", 0): (130.0, 0.4), ("none", 1): (126.0, 0.2)}
    for num, ((diffusion, seed), (fid, recall)) in enumerate(finals.items()):
        evals = [{"kimg": 1.0, "fid": 999.0, "recall": 0.0},  # only the final record counts
                 {"kimg": 2.0, "fid": fid, "recall": recall}]
        _fake_job(sweep, num, [f"diffusion={diffusion}", f"seed={seed}"], evals)
    assert report_main([str(sweep), "group_by=diffusion"]) == 0
    assert "2 group(s)" in capsys.readouterr().out
    rows = {r["diffusion"]: r for r in csv.DictReader((sweep / "sweep_groups.csv").open())}
    assert set(rows) == {"stylegan2", "none"}
    for diffusion in rows:
        fids = [finals[(diffusion, s)][0] for s in (0, 1)]
        recalls = [finals[(diffusion, s)][1] for s in (0, 1)]
        row = rows[diffusion]
        assert float(row["fid_mean"]) == pytest.approx(sum(fids) / 2)
        assert float(row["fid_std"]) == pytest.approx(abs(fids[0] - fids[1]) / 2**0.5)
        assert float(row["recall_mean"]) == pytest.approx(sum(recalls) / 2)
        assert float(row["recall_std"]) == pytest.approx(abs(recalls[0] - recalls[1]) / 2**0.5)
        assert row["fid_n"] == row["recall_n"] == "2"
    table = (sweep / "sweep_groups.md").read_text()
    assert "| diffusion | fid | recall |" in table and "105 ± 7.071 (n=2)" in table
    assert (sweep / "sweep_groups.png").read_bytes().startswith(b"\x89PNG")
    # A key no job overrides is one line naming the keys there are.
    assert report_main([str(sweep), "--group-by", "model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diffusion, seed" in err


def test_curves_give_the_metric_against_kimg_and_training_time(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    # Two seeds per recipe; the second "old" seed stopped after its first evaluation.
    runs = {("new", 0): [(5, 60.0, 50.0), (10, 120.0, 20.0)],
            ("new", 1): [(5, 70.0, 40.0), (10, 130.0, 10.0)],
            ("old", 0): [(5, 100.0, 90.0), (10, 200.0, 80.0)],
            ("old", 1): [(5, 110.0, 70.0)]}
    for num, ((recipe, seed), points) in enumerate(runs.items()):
        evals = [{"kimg": k, "fid": fid, "train_seconds": sec} for k, sec, fid in points]
        _fake_job(sweep, num, [f"experiment={recipe}", f"seed={seed}"], evals)
    assert report_main([str(sweep), "--group-by", "experiment", "--curves"]) == 0
    assert "curves (4 points)" in capsys.readouterr().out
    rows = list(csv.DictReader((sweep / "sweep_curves.csv").open()))
    by = {(r["group"], int(r["evaluation"])): r for r in rows}
    assert float(by[("experiment=new", 1)]["value_mean"]) == 15.0
    assert float(by[("experiment=new", 1)]["seconds_mean"]) == 125.0
    assert float(by[("experiment=new", 0)]["value_std"]) == pytest.approx(50**0.5)
    assert by[("experiment=old", 1)]["n"] == "1" and by[("experiment=old", 1)]["value_std"] == ""
    assert float(by[("experiment=old", 0)]["kimg_mean"]) == 5.0
    assert (sweep / "sweep_curves.png").read_bytes().startswith(b"\x89PNG")
    # train_seconds is when a record was taken, not a metric of the group table.
    groups = list(csv.DictReader((sweep / "sweep_groups.csv").open()))
    assert not any("train_seconds" in column for column in groups[0])


def test_train_seconds_leave_out_the_evaluations(tmp_path: Path) -> None:
    from dgan.callbacks.metrics import MetricsCallback

    callback = MetricsCallback(metrics=[], run_dir=tmp_path)
    callback.load_state_dict({"next_kimg": 0.0, "best": None, "train_seconds": 30.0})
    callback.on_train_start(None, None)
    callback._evaluating = 1e6  # an evaluation longer than the training: clamped out below
    assert callback.train_seconds() < 30.0
    callback._evaluating = 0.0
    assert 30.0 <= callback.train_seconds() < 60.0
    assert callback.state_dict()["train_seconds"] >= 30.0


def test_report_refuses_a_directory_without_jobs(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty" / "0").mkdir(parents=True)
    assert report_main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no jobs" in err and ".hydra/overrides.yaml" in err
    assert report_main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_grid_config_sweeps_sigma_t_max_and_d_target(tmp_path: Path) -> None:
    cfg = compose_train(["hparams_search=diffusion_grid"], tmp_path / "run")
    assert str(cfg.hydra.mode).endswith("MULTIRUN")
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    params = cfg.hydra.sweeper.params
    assert list(params) == ["diffusion.noise_std", "diffusion.t_max", "adaptive.d_target"]
    assert len(list(itertools.product(*(str(v).split(",") for v in params.values())))) == 12


def test_optuna_config_composes_and_names_the_sweeper(tmp_path: Path) -> None:
    cfg = compose_train(["hparams_search=diffusion_optuna", "hydra.sweeper.n_trials=3",
                         "hydra.sweeper.n_jobs=2"], tmp_path / "a")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.n_trials == 3 and sweeper.n_jobs == 2
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert set(sweeper.params) == {"diffusion.noise_std", "diffusion.t_max", "adaptive.d_target"}
    # The default job's headline is the digits FID: minimised; the toy's modes_covered is not.
    assert sweeper.direction == "minimize"
    toy = compose_train(["hparams_search=diffusion_optuna", "experiment=gaussians25"],
                        tmp_path / "b")
    assert toy.hydra.sweeper.direction == "maximize"
    assert toy.hydra.sweeper.study_name == "diffusion_gaussians25"
    forced = compose_train(["hparams_search=diffusion_optuna", "experiment=gaussians25",
                            "hydra.sweeper.direction=minimize"], tmp_path / "c")
    assert forced.hydra.sweeper.direction == "minimize"
    # An optimising sweep without a metric is refused before anything is built.
    none = compose_train(["hparams_search=diffusion_optuna", "experiment=gaussians25",
                          "metrics=none"], tmp_path / "d")
    with pytest.raises(ConfigError, match="metrics.metrics is empty"):
        check_launch(none)


def test_slurm_launcher_is_sized_from_the_trainer(tmp_path: Path) -> None:
    cfg = compose_train(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
                         "trainer.num_nodes=2", "hydra.launcher.partition=gpu",
                         "hydra.launcher.timeout_min=60"], tmp_path / "a")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (4, 2, 4)
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 60)
    built = instantiate(launcher)  # the object Hydra builds, with resolved parameters
    assert built.params["tasks_per_node"] == 4 and built.params["nodes"] == 2
    cpu = compose_train(["hydra/launcher=slurm", "trainer=ddp_cpu"], tmp_path / "b")
    assert (cpu.hydra.launcher.tasks_per_node, cpu.hydra.launcher.gpus_per_node) == (2, None)


SLURM_2x4 = {"SLURM_NTASKS": "8", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "4",
             "SLURM_JOB_NAME": "dgan", "SLURM_PROCID": "0"}


def test_slurm_world_size_check(monkeypatch) -> None:
    trainer = {"accelerator": "gpu", "devices": 4, "num_nodes": 2}
    check_slurm_world_size(trainer, SLURM_2x4)  # 4 x 2 = 8 tasks: fine
    check_slurm_world_size(trainer, {})  # not in a SLURM job: nothing to check
    check_slurm_world_size({**trainer, "devices": 1}, {**SLURM_2x4, "SLURM_JOB_NAME": "bash"})
    with pytest.raises(ConfigError) as err:
        check_slurm_world_size({**trainer, "devices": 2}, SLURM_2x4)
    message = str(err.value)
    assert "\n" not in message
    assert "trainer.devices=2" in message and "= 4 processes" in message
    assert "SLURM_NTASKS=8" in message and "hydra/launcher=slurm" in message
    # Same world size, wrong layout: 8 x 1 against 4 per node on 2 nodes.
    with pytest.raises(ConfigError, match="SLURM_NNODES=2"):
        check_slurm_world_size({**trainer, "devices": 8, "num_nodes": 1}, SLURM_2x4)
    # Without SLURM_NTASKS the count comes from tasks per node x nodes.
    with pytest.raises(ConfigError, match="runs 6 task"):
        check_slurm_world_size(trainer, {"SLURM_NNODES": "2", "SLURM_TASKS_PER_NODE": "3(x2)"})
    # check_launch reads the real environment.
    monkeypatch.setenv("SLURM_NTASKS", "3")
    monkeypatch.setenv("SLURM_JOB_NAME", "dgan")
    monkeypatch.delenv("SLURM_NNODES", raising=False)
    monkeypatch.delenv("SLURM_NTASKS_PER_NODE", raising=False)
    with pytest.raises(ConfigError, match="SLURM runs 3 task"):
        check_launch(compose_train(["experiment=gaussians25"]))


def test_local_multirun_with_ddp_is_refused(tmp_path: Path) -> None:
    from dgan.train import train

    multi = ["experiment=gaussians25", "hydra.mode=MULTIRUN"]
    for trainer in (["trainer=ddp_cpu"], ["trainer.devices=2"], ["trainer.num_nodes=2"]):
        cfg = compose_train([*multi, *trainer], tmp_path / "a")
        with pytest.raises(ConfigError) as err:
            train(cfg)  # refused before anything is built or started
        assert "local multirun" in str(err.value) and "hydra/launcher=slurm" in str(err.value)
        assert "\n" not in str(err.value)
        assert not (tmp_path / "a").exists()
    # One process per job, a single DDP run, or a sweep through SLURM: allowed.
    check_launch(compose_train(multi, tmp_path / "b"))
    check_launch(compose_train(["experiment=gaussians25", "trainer=ddp_cpu"], tmp_path / "c"))
    check_launch(compose_train([*multi, "trainer=ddp_cpu", "hydra/launcher=slurm"],
                               tmp_path / "d"))


def test_wandb_group_only_in_a_multirun(tmp_path: Path) -> None:
    single = compose_train(["logger=wandb"], tmp_path / "a")
    assert single.logger.wandb.group is None
    multi = compose_train(["logger=wandb", "hydra.mode=MULTIRUN",
                           f"hydra.sweep.dir={tmp_path}/toy/2026-01-01_00-00-00"], tmp_path / "b")
    assert multi.logger.wandb.group == "toy-2026-01-01_00-00-00"


def test_finish_wandb_ends_the_run(tmp_path: Path) -> None:
    import wandb

    from dgan.tracking.loggers import finish_wandb, wandb_logger

    logger = wandb_logger(save_dir=tmp_path, mode="offline", name="finish")
    assert logger.experiment is not None and wandb.run is not None
    finish_wandb([logger])
    assert wandb.run is None
    finish_wandb([logger])  # nothing open: no error


@pytest.mark.slow
def test_optuna_multirun_optimises_the_returned_headline(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "optuna"
    cmd = [sys.executable, "-m", "dgan.train", "-m", "hparams_search=diffusion_optuna", *TINY,
           "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1",
           "diffusion.t_max=choice(50,100)",  # replaces the config's row for this key
           f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    finals = [read_metrics(sweep_dir / str(n))[-1]["modes_covered"] for n in range(2)]
    assert results["best_value"] == max(finals)  # the value dgan.train returned, maximised
    assert report_main([str(sweep_dir)]) == 0
    rows = list(csv.DictReader((sweep_dir / "sweep_report.csv").open()))
    assert len(rows) == 2 and "diffusion.noise_std" in rows[0]
