"""Training through the Hydra compose API and the command line, on the toy problem."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError
from dgan.files.run_files import read_metrics

from .conftest import CONF, REPO

FAST = [
    "kimg=2",
    "model.batch_size=64",
    "model.generator.hidden=32",
    "model.discriminator.hidden=32",
    "metrics.every_kimg=1",
    "callbacks.samples.every_kimg=1",
    "callbacks.checkpoint.every_kimg=1",
    "trainer.log_every_n_steps=5",
]


def test_few_step_training_writes_run_files(compose_cfg) -> None:
    cfg = compose_cfg("experiment=gaussians25", *FAST)
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    module = run.module
    assert module.cur_nimg >= 2000
    assert module.cur_step == -(-2000 // 64)
    records = read_metrics(run.run_dir)
    assert len(records) >= 2 and records[-1]["kimg"] == pytest.approx(module.kimg, abs=1e-3)
    assert {"modes_covered", "hq_fraction", "mode_kl"} <= set(records[-1])
    assert (run.run_dir / "checkpoints" / "last.ckpt").exists()
    assert list((run.run_dir / "samples").glob("scatter*.png"))
    assert (run.run_dir / "metrics.csv").read_text().count("diffusion/p") == 1
    # The adaptive diffusion moved p at least once and T follows p.
    d = module.diffusion
    assert d.T.item() == d.t_min + round(d.p.item() * (d.t_max - d.t_min))
    # G_ema drifted from its initial copy of G but is not G.
    ema = torch.cat([p.flatten() for p in module.G_ema.parameters()])
    g = torch.cat([p.flatten() for p in module.G.parameters()])
    assert not torch.equal(ema, g)
    # The checkpoint holds the config as a plain dict and the diffusion state.
    ckpt = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["dgan"]["config"]["dataset"]["name"] == "gaussians25"
    assert ckpt["state_dict"]["diffusion.T"] == d.T
    assert ckpt["dgan"]["cur_nimg"] == module.cur_nimg


def test_plain_gan_baseline_is_the_same_module(compose_cfg) -> None:
    cfg = compose_cfg("experiment=gaussians25", "diffusion=none", *FAST)
    assert cfg.diffusion is None and cfg.adaptive is None
    run = build_run(cfg)
    # The builder gives D no t input: diffusion=none changes nothing outside its group.
    assert run.module.D.head.mode == "none"
    assert run.module.adaptive is None and run.module.configure_callbacks() == []
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.module.diffusion is None and run.module.cur_nimg >= 2000


def test_same_seed_same_result(compose_cfg, tmp_path) -> None:
    weights = []
    for i in range(2):
        cfg = compose_cfg("experiment=gaussians25", *FAST, "kimg=0.5", "seed=7",
                          f"hydra.runtime.output_dir={tmp_path / str(i)}")
        run = build_run(cfg)
        run.trainer.fit(run.module, datamodule=run.datamodule)
        weights.append(torch.cat([p.flatten() for p in run.module.G_ema.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes(compose_cfg, experiment: str) -> None:
    cfg = compose_cfg(f"experiment={experiment}")
    assert cfg.kimg > 0 and cfg.model._target_ and cfg.dataset._target_


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("diffusion.t_min=-1", "diffusion.t_min"),
        ("diffusion.noise_std=0", "diffusion.noise_std"),
        ("diffusion.beta_schedule=nope", "diffusion.beta_schedule"),
        ("diffusion.ts_dist=nope", "diffusion.ts_dist"),
        ("model.discriminator.t_conditioning=nope", "model"),
        ("+diffusion.sigma=0.1", "diffusion.sigma"),
    ],
)
def test_bad_values_fail_before_training_naming_the_key(compose_cfg, override, key) -> None:
    cfg = compose_cfg("experiment=gaussians25", override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_run(cfg)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dgan.train", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_d_target_out_of_range_is_one_line(tmp_path) -> None:
    res = _cli("experiment=gaussians25", "adaptive.d_target=1.5", cwd=tmp_path)
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: adaptive.d_target=1.5 is not valid; expected a number in [0, 1]"
    ], res.stderr[-2000:]
    assert not list(tmp_path.glob("outputs/**/checkpoints"))


def test_cli_t_min_above_t_max(tmp_path) -> None:
    res = _cli("experiment=gaussians25", "diffusion.t_min=50", "diffusion.t_max=20", cwd=tmp_path)
    assert res.returncode != 0 and "diffusion.t_max=20" in res.stderr and "t_min" in res.stderr


def test_cli_unknown_key_and_unknown_experiment(tmp_path) -> None:
    res = _cli("experiment=gaussians25", "diffusion.sigmaa=0.1", cwd=tmp_path)
    assert res.returncode != 0 and "diffusion.sigmaa" in res.stderr
    res = _cli("experiment=gaussians52", cwd=tmp_path)
    assert res.returncode != 0 and "gaussians52" in res.stderr and "gaussians25" in res.stderr


def test_cli_run_prints_run_dir_and_writes_metrics_jsonl(tmp_path) -> None:
    res = _cli("experiment=ring8", *FAST, "kimg=1", f"hydra.run.dir={tmp_path / 'run'}",
               cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"run directory: {tmp_path / 'run'}" in res.stdout
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["kimg"] >= 1 and 0 <= record["modes_covered"] <= 8


def test_a_multirun_run_again_with_resume_auto_skips_its_finished_jobs(tmp_path) -> None:
    # make reproduce-* runs its multiruns with resume=auto: a target stopped part-way continues
    # when run again, and its finished jobs are left exactly as they were.
    sweep = tmp_path / "sweep"
    args = ("-m", "experiment=ring8", *FAST, "kimg=1", "seed=0,1", "resume=auto",
            f"hydra.sweep.dir={sweep}")
    first = _cli(*args, cwd=REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    records = {s: (sweep / str(s) / "metrics.jsonl").read_text() for s in (0, 1)}
    # job 1 interrupted before its final evaluation: its summary is gone
    (sweep / "1" / "metrics_summary.json").unlink()
    again = _cli(*args, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already finished at kimg 1.024 (resume=auto): nothing to train") == 1
    assert (sweep / "0" / "metrics.jsonl").read_text() == records[0]
    def rows(text: str) -> list[dict]:  # the wall clock aside, the same records
        return [{k: v for k, v in json.loads(line).items() if k != "train_seconds"}
                for line in text.splitlines()]

    # completed: the final record written again, once, with the values of the first time
    assert rows((sweep / "1" / "metrics.jsonl").read_text()) == rows(records[1])
    assert (sweep / "1" / "metrics_summary.json").is_file()
    # An explicit checkpoint asks for training: one that reached kimg is refused as before.
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    res = _cli("experiment=ring8", *FAST, "kimg=1", f"resume={last}",
               f"hydra.run.dir={sweep / '0'}", cwd=REPO)
    assert res.returncode == 2 and "already reached" in res.stderr


def test_resume_refuses_a_finished_run(compose_cfg) -> None:
    cfg = compose_cfg("experiment=gaussians25", *FAST, "kimg=0.5")
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    cfg = compose_cfg("experiment=gaussians25", *FAST, "kimg=0.5", "resume=auto")
    with pytest.raises(ConfigError, match="already reached"):
        build_run(cfg)
