"""Experiment tracking: a short run logged to W&B (offline, read back from its .wandb file) and
to CSV, the diffusion diagnostics, the throughput numbers and the run metadata."""

from __future__ import annotations

import csv
import struct
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from dgan.assembly.builder import build_run
from dgan.callbacks.diffusion_diagnostics import COLUMNS, DiffusionDiagnostics, t_buckets
from dgan.callbacks.throughput import peak_memory_gib
from dgan.data.toy import ToyDataset
from dgan.diffusion import Diffusion
from dgan.tracking.run_info import git_revision
from dgan.tracking.wandb_offline import BLOCK_SIZE, FULL, read_chunks, read_offline_run

from .conftest import REPO, compose_train

# d_target=0 makes every D with r_d > 0 push p up, and ada_kimg=1 moves p by 0.256 per update,
# so p and T change within the 8 steps of this run.
SHORT = [
    "experiment=gaussians25",
    "kimg=0.5",
    "model.batch_size=64",
    "model.generator.hidden=32",
    "model.discriminator.hidden=32",
    "adaptive.d_target=0",
    "adaptive.ada_kimg=1",
    "metrics.every_kimg=0.25",
    "callbacks.samples.every_kimg=0.25",
    "callbacks.checkpoint.every_kimg=0",
    "trainer.log_every_n_steps=2",
]
# What W&B adds to every record by itself, and Lightning's own step counter.
BOOKKEEPING = {"_step", "_runtime", "_timestamp", "trainer/global_step"}


def _train(overrides: list[str], run_dir: Path):
    cfg = compose_train(SHORT + overrides, run_dir)
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return run


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    import wandb

    run_dir = tmp_path_factory.mktemp("wandb") / "run"
    try:
        run = _train(["logger=wandb", "logger.wandb.mode=offline",
                      "logger.wandb.log_model=true"], run_dir)
    finally:
        wandb.finish()  # what dgan.train does at the end of every job
        # finish hands the last records to wandb's service process, which writes them when it
        # gets to it (late on a busy machine); teardown returns once the service has exited.
        wandb.teardown()
    offline = read_offline_run(run_dir)
    assert offline.exit_code == 0, "the run file lacks its exit record: not fully written"
    return run, offline


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("csv") / "run"
    run = _train(["logger=csv"], run_dir)
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return run, rows


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(row[key]) for row in rows if row.get(key)]


def test_wandb_offline_run_has_config_scalars_metrics_and_images(wandb_run) -> None:
    run, offline = wandb_run
    # The resolved config as a plain dict, with the overrides, output dir and git revision.
    assert offline.config["dataset"]["name"] == "gaussians25"
    assert offline.config["adaptive"]["ada_kimg"] == 1
    assert "logger.wandb.mode=offline" in offline.config["overrides"]
    assert offline.config["output_dir"] == str(run.run_dir)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    assert offline.config["git_revision"] == head
    # kimg is the x axis of every chart and is in every record, never going back.
    assert offline.step_metrics["*"] == "kimg"
    assert offline.history and all("kimg" in row for row in offline.history)
    kimgs = [row["kimg"] for row in offline.history]
    assert kimgs == sorted(kimgs) and kimgs[-1] == pytest.approx(run.module.kimg, abs=1e-3)
    # p moved and T followed it.
    d = run.module.diffusion
    p = offline.series("diffusion/p")
    T = offline.series("diffusion/T")
    assert len(p) >= 2 and p[-1][1] == pytest.approx(d.p.item()) and p[-1][1] > 0
    # One record per adaptive update, none lost to the deferred (once per log step) sending.
    assert len(p) == run.module.cur_step // run.module.adaptive.interval
    assert [t for _, t in T] == [d.t_min + round(v * (d.t_max - d.t_min)) for _, v in p]
    assert offline.series("diffusion/r_d") and offline.series("loss/G")
    # Speed and memory.
    for key in ("perf/sec_per_kimg", "perf/images_per_s", "perf/peak_mem_gib"):
        assert offline.series(key) and all(v > 0 for _, v in offline.series(key)), key
    # A metric at each evaluation, with its kimg.
    covered = offline.series("metrics/modes_covered")
    assert [k for k, _ in covered] == [0.256, 0.512]
    assert all(1 <= v <= 25 for _, v in covered)
    # Pictures at their kimg, with the PNG stored in the run's files.
    files = offline.path.parent / "files"
    for key in ("samples", "diagnostics/d_by_t", "diagnostics/dynamics"):
        images = offline.series(key)
        # The samples grid is drawn once before training too (fakes_init.png) and logged at 0.
        expected = [0, 0.256, 0.512] if key == "samples" else [0.256, 0.512]
        assert [k for k, _ in images] == expected, key
        for _, image in images:
            assert image["_type"] == "image-file"
            assert (files / image["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = offline.series("diagnostics/d_by_t_table")
    assert len(tables) == 2 and tables[0][1]["_type"] == "table-file"
    # Checkpoints as artifacts (logger.wandb.log_model=true).
    models = [a for a in offline.artifacts if a[1] == "model"]
    assert models and "latest" in models[-1][2]


def test_progress_bar_shows_kimg_p_T_losses_and_speed(wandb_run) -> None:
    run, _ = wandb_run
    shown = run.trainer.progress_bar_metrics
    assert {"kimg", "p", "T", "lossG", "lossD", "sec/kimg"} <= set(shown)
    assert shown["sec/kimg"] > 0 and shown["kimg"] == pytest.approx(run.module.kimg, abs=1e-3)


def test_csv_run_writes_the_same_scalars_and_pngs(csv_run, wandb_run) -> None:
    run, rows = csv_run
    _, offline = wandb_run
    scalars = {key for row in offline.history for key, value in row.items()
               if isinstance(value, (int, float)) and key not in BOOKKEEPING}
    assert scalars - set(rows[0]) == set()
    # Same seed, same training: the CSV holds the values W&B got.
    assert _column(rows, "diffusion/p") == pytest.approx(
        [v for _, v in offline.series("diffusion/p")])
    assert _column(rows, "metrics/modes_covered") == [v for _, v in
                                                      offline.series("metrics/modes_covered")]
    run_dir = run.run_dir
    assert list((run_dir / "samples").glob("scatter*.png"))
    assert len(list((run_dir / "diagnostics").glob("d_by_t_kimg*.png"))) == 2
    assert (run_dir / "diagnostics" / "dynamics.png").exists()
    assert "overfit/r_t" in rows[0] and "overfit/logit_fake" in rows[0]
    hparams = yaml.safe_load((run_dir / "hparams.yaml").read_text())
    assert "logger=csv" in hparams["overrides"] and hparams["dataset"]["name"] == "gaussians25"
    with (run_dir / "diagnostics" / "d_by_t.csv").open() as f:
        table = list(csv.DictReader(f))
    T = int(run.module.diffusion.T)
    last = [row for row in table if float(row["kimg"]) == pytest.approx(run.module.kimg)]
    assert [int(row["t_lo"]) for row in last][:2] == [0, 1]
    assert int(last[-1]["t_hi"]) == T and int(last[0]["T"]) == T
    with (run_dir / "diagnostics" / "p_T.csv").open() as f:
        history = list(csv.DictReader(f))
    assert float(history[-1]["p"]) == pytest.approx(run.module.diffusion.p.item())


def test_wandb_disabled_writes_no_run(tmp_path) -> None:
    import wandb

    cfg = compose_train(SHORT + ["logger=wandb", "logger.wandb.mode=disabled"], tmp_path / "r")
    try:
        build_run(cfg)
    finally:
        wandb.finish()  # a run left open would be reused by the next test's logger
    assert not list(tmp_path.rglob("offline-run-*")) and not list(tmp_path.rglob("run-*.wandb"))
    assert not list(tmp_path.rglob("wandb_run_id.txt"))  # no run to resume


def test_t_buckets_cover_one_to_T_once() -> None:
    for T in (1, 3, 10, 53, 1000):
        buckets = t_buckets(T, 10)
        assert buckets[0] == (0, 0) and len(buckets) == min(T, 10) + 1
        covered = [t for lo, hi in buckets[1:] for t in range(lo, hi + 1)]
        assert covered == list(range(1, T + 1))


class _TStub(torch.nn.Module):
    """G is the identity on its latents; D answers t - 0.5, so its logits reveal the t it saw."""

    def __init__(self, diffusion: Diffusion) -> None:
        super().__init__()
        self.diffusion = diffusion
        self.G = _Identity()
        self.device = torch.device("cpu")
        self.kimg = 1.0

    @staticmethod
    def D(y: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (t.float() - 0.5).unsqueeze(1)


class _Identity(torch.nn.Module):
    z_dim = 2

    def forward(self, z: torch.Tensor, c: torch.Tensor, **_: object) -> torch.Tensor:
        return z


def test_diagnostics_score_each_bucket_at_its_t_and_leave_training_rng_alone(tmp_path) -> None:
    diffusion = Diffusion(t_min=5, t_max=100, noise_std=0.5, p_init=0.5)
    reference = Diffusion(t_min=5, t_max=100, noise_std=0.5, p_init=0.5)
    module = _TStub(diffusion)
    callback = DiffusionDiagnostics(tmp_path, num_samples=32)
    global_rng = torch.random.get_rng_state()
    rows = callback.score(ToyDataset(size=200), module)
    col = {name: i for i, name in enumerate(COLUMNS)}
    T = int(diffusion.T)
    assert len(rows) == 11 and all(row[col["T"]] == T for row in rows)
    for row in rows:
        lo, hi = row[col["t_lo"]], row[col["t_hi"]]
        assert lo - 0.5 <= row[col["real_logit"]] <= hi - 0.5
        assert lo - 0.5 <= row[col["fake_logit"]] <= hi - 0.5
    clean = rows[0]
    assert clean[col["real_acc"]] == 0 and clean[col["fake_acc"]] == 1 and clean[col["acc"]] == 0.5
    assert rows[-1][col["real_acc"]] == 1 and rows[-1][col["fake_acc"]] == 0
    # The training's random streams are untouched.
    assert torch.equal(torch.random.get_rng_state(), global_rng)
    assert torch.equal(diffusion.sample_t(64), reference.sample_t(64))


def test_peak_memory_and_git_revision(tmp_path) -> None:
    assert 0 < peak_memory_gib(torch.device("cpu")) < 1024
    assert git_revision(tmp_path) is None  # not a repository
    assert git_revision() is not None and len(git_revision()) == 40


def _frame(records: list[bytes]) -> bytes:
    """LevelDB log framing, as W&B writes its .wandb files (header, 32 KiB blocks)."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for data in records:
        first = True
        while True:
            left = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if left < 7:
                out += bytes(left)
                left = BLOCK_SIZE
            room = left - 7
            chunk, data = data[:room], data[room:]
            kind = (FULL if first else 4) if not data else (2 if first else 3)
            out += struct.pack("<IHB", 0, len(chunk), kind) + chunk
            first = False
            if not data:
                break
    return bytes(out)


def test_offline_reader_reassembles_records_across_blocks() -> None:
    records = [b"a" * 10, b"b" * (BLOCK_SIZE * 2 + 123), b"c" * (BLOCK_SIZE - 30), b"", b"d"]
    assert list(read_chunks(_frame(records))) == records


def test_wandb_mode_accepts_wandbs_own_names_and_names_bad_ones(monkeypatch) -> None:
    from dgan.tracking.loggers import resolve_wandb_mode

    # wandb.init writes WANDB_MODE=dryrun back; DDP workers inherit it.
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert resolve_wandb_mode(None) == "offline"
    assert resolve_wandb_mode("disabled") == "disabled"
    with pytest.raises(ValueError, match=r"^mode='nope' is not valid"):
        resolve_wandb_mode("nope")
