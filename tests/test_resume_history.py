"""A resumed run keeps its history: metrics.csv, every record file of the run directory and the
W&B run continue where the checkpoint is, as if the run had never stopped."""

from __future__ import annotations

import csv
import json
import shutil
import signal
from pathlib import Path

import lightning as L
import pytest

from dgan.callbacks.preemption import Preempted
from dgan.files.run_files import TRAIN_SECONDS
from dgan.tracking.run_history import WANDB_ID_FILE, read_wandb_run_id, trim_history
from dgan.tracking.wandb_offline import find_offline_runs, read_offline_run

from .conftest import fit_in_process

# 16 steps of 64 with evaluations, diagnostics and records every few steps, so that every
# record file has rows before and after the stop.
COMMON = [
    "experiment=gaussians25",
    "model.generator.hidden=32",
    "model.discriminator.hidden=32",
    "model.batch_size=64",
    "kimg=1",
    "seed=7",
    "adaptive.ada_kimg=4",
    "diffusion.p_init=0.5",
    "metrics.every_kimg=0.25",
    "metrics.batch_size=500",
    "metrics.metrics=[mode_coverage500]",
    "callbacks.diagnostics.every_kimg=0.25",
    "callbacks.samples=null",
    "callbacks.progress=null",
    "trainer.log_every_n_steps=2",
]
STOP_STEP = 10
RECORD_FILES = ("metrics.csv", "metrics.jsonl", "diagnostics/p_T.csv", "diagnostics/d_by_t.csv")
# Wall-clock numbers differ between any two runs; everything else must not.
TIMING_PREFIX = "perf/"


class _SignalAt(L.Callback):
    """Sends this process ``signum`` at the end of step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.cur_step == self.step:
            signal.raise_signal(self.signum)



def _rows(path: Path) -> list[dict[str, str]]:
    """The rows of a record file, without the wall-clock columns."""
    if path.suffix == ".jsonl":
        return [{k: str(v) for k, v in json.loads(line).items() if k != TRAIN_SECONDS}
                for line in path.read_text().splitlines()]
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith(TIMING_PREFIX)}
                for row in csv.DictReader(f)]


def _history(run_dir: Path) -> dict[str, list[dict[str, str]]]:
    return {name: _rows(run_dir / name) for name in RECORD_FILES}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    """The record files of the uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    fit_in_process(COMMON, run_dir)
    return _history(run_dir)


def test_sigterm_then_resume_keeps_every_row_of_the_first_part(tmp_path: Path,
                                                               reference) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted) as stop:
        fit_in_process(COMMON, run_dir, _SignalAt(STOP_STEP, signal.SIGTERM))
    first = _history(run_dir)
    assert all(first[name] for name in RECORD_FILES), "every file has rows before the stop"
    fit_in_process([*COMMON, "resume=auto"], run_dir)
    resumed = _history(run_dir)
    for name in RECORD_FILES:
        # The first part's rows stay as they were, in front ...
        assert resumed[name][:len(first[name])] == first[name], name
        # ... and the whole equals the uninterrupted run's: nothing lost, nothing twice.
        assert resumed[name] == reference[name], name
    kimgs = [float(row["kimg"]) for row in resumed["diagnostics/p_T.csv"]]
    assert kimgs == sorted(kimgs) and kimgs[-1] == pytest.approx(1.024)
    assert stop.value.kimg < kimgs[-1]


def test_resume_after_a_crash_drops_the_rows_past_the_checkpoint(tmp_path: Path,
                                                                 reference) -> None:
    run_dir = tmp_path / "run"
    fit_in_process([*COMMON, "callbacks.checkpoint.every_kimg=0.5",
          "callbacks.checkpoint.keep_snapshots=true"], run_dir)
    # A crash after the 0.5 kimg checkpoint: last.ckpt is that one, the files go further.
    checkpoints = run_dir / "checkpoints"
    first = sorted(checkpoints.glob("kimg*.ckpt"))[0]  # named by its kimg, 0.512
    shutil.copyfile(first, checkpoints / "last.ckpt")
    fit_in_process([*COMMON, "resume=auto"], run_dir)
    assert _history(run_dir) == reference


def test_trim_history_keeps_rows_up_to_the_checkpoint_and_skips_foreign_files(
        tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("a,kimg\n1,0.25600001\n2,0.512\n3,0.768\n")
    (tmp_path / "metrics.jsonl").write_text('{"kimg": 0.256}\n{"kimg": 0.768}\n{"kimg": 0.')
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "w.csv").write_text("kimg\n9\n")
    changed = trim_history(tmp_path, 0.512)
    assert sorted(p.name for p in changed) == ["metrics.csv", "metrics.jsonl"]
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["a,kimg", "1,0.25600001",
                                                                   "2,0.512"]
    # The line a crash cut is gone with the rows past the checkpoint.
    assert (tmp_path / "metrics.jsonl").read_text() == '{"kimg": 0.256}\n'
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n"
    assert (tmp_path / "wandb" / "w.csv").read_text() == "kimg\n9\n"
    # A fresh start in the same directory begins the history again.
    trim_history(tmp_path, None)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["a,kimg"]


def _finished_offline_runs(run_dir: Path) -> list:
    import wandb

    wandb.finish()
    # Blocks until wandb's service has exited, so every record it had is in the files.
    wandb.teardown()
    runs = [read_offline_run(path) for path in find_offline_runs(run_dir)]
    assert all(run.exit_code is not None for run in runs), "a run without its exit record"
    return runs


def test_wandb_resumes_the_same_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    logger = ["logger=wandb", "logger.wandb.mode=offline"]
    with pytest.raises(Preempted) as stop:
        fit_in_process([*COMMON, *logger], run_dir, _SignalAt(STOP_STEP, signal.SIGTERM))
    _finished_offline_runs(run_dir)  # what dgan.train does before it exits
    run_id = read_wandb_run_id(run_dir)
    assert run_id and (run_dir / WANDB_ID_FILE).is_file()
    resumed = fit_in_process([*COMMON, *logger, "resume=auto"], run_dir)
    first, second = _finished_offline_runs(run_dir)
    # One W&B run in two parts (wandb sync uploads both into it).
    assert first.run_id == second.run_id == run_id
    kimgs = [row["kimg"] for row in second.history if "kimg" in row]
    assert kimgs and min(kimgs) > stop.value.kimg - 1e-9
    assert max(kimgs) == pytest.approx(resumed.module.kimg, abs=1e-3)
    # A fresh start in the same directory is a new W&B run.
    fit_in_process([*COMMON, *logger, "kimg=0.128"], run_dir)
    _finished_offline_runs(run_dir)
    assert read_wandb_run_id(run_dir) != run_id


def test_training_longer_from_the_final_checkpoint_keeps_the_last_point(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = fit_in_process([*COMMON, "kimg=0.512"], run_dir)
    before = _history(run_dir)
    last = before["diagnostics/p_T.csv"][-1]
    assert float(last["p"]) == pytest.approx(first.module.diffusion.p.item())
    fit_in_process([*COMMON, "resume=auto"], run_dir)  # kimg=1: the same run, trained longer
    after = _history(run_dir)
    for name in RECORD_FILES:
        assert after[name][:len(before[name])] == before[name], name
