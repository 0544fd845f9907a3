"""Resume gives the uninterrupted history: after a SIGKILL, a SIGTERM, a double Ctrl-C or a kill
before the final evaluation and ``resume=auto``, and after a resume from a kept snapshot,
metrics.csv, metrics.jsonl and the diagnostics CSVs hold exactly the rows of an uninterrupted
run of the same command: the same kimg, step, keys and values (training on a CPU with a fixed
seed is bit-exact), in order."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch

from dgan.assembly.builder import build_run
from dgan.callbacks.checkpoint import HISTORY_KEY, LAST
from dgan.callbacks.metrics import MetricsCallback
from dgan.callbacks.preemption import Preempted
from dgan.files.run_files import TRAIN_SECONDS
from dgan.tracking.run_history import record_counts, trim_to_counts

from .conftest import REPO, compose_train, fit_in_process
from .test_resume_history import COMMON

# The resume-history run (16 steps of 64 images), with losses every 3 steps (a period unlike
# the adaptive update's 4 and the checkpoints' 8, so that a step counted twice shows), D's
# lazy R1 every 5 (recorded at the 6th and 16th iterations only: a value that must not reappear
# in later records), evaluations and diagnostics every 0.25 kimg, a checkpoint and a kept
# snapshot at kimg 0.512.
RUN = [
    *(o for o in COMMON if not o.startswith("trainer.log_every_n_steps=")),
    "model.d_reg_interval=5",
    "callbacks.checkpoint.every_kimg=0.5",
    "callbacks.checkpoint.keep_snapshots=true",
    "trainer.log_every_n_steps=3",
]
# Where the interruptions strike: past the checkpoint at step 8 (kimg 0.512), so that the
# interrupted part wrote rows after it.
STOP_STEP = 10
CHECKPOINT_KIMG = 0.512
R1_RECORD_STEPS = ["5", "15"]  # Lightning's steps count from 0
SNAPSHOTS = "kimg*.ckpt"  # the kept copies of the checkpoints
# The run's records: what the guarantee covers.
RECORD_FILES = ("metrics.csv", "metrics.jsonl")
DIAGNOSTICS_CSV = "diagnostics/*.csv"
# Wall-clock columns differ between any two runs.
TIMING_PREFIX = "perf/"
CHILD_TIMEOUT_S = 300


class SignalAt(L.Callback):
    """Sends this process the named signals, one after the other, at the end of step ``step``.

    Args:
        step: the training iteration (the module's ``cur_step``) after which to send them.
        signals: signal names, e.g. [SIGINT, SIGINT].
    """

    def __init__(self, step: int, signals: list[str]) -> None:
        self.step = step
        self.signals = [signal.Signals[name] for name in signals]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.cur_step == self.step:
            for signum in self.signals:
                signal.raise_signal(signum)


class KilledAtTheEnd(Exception):
    """What a kill does to the run at that moment: nothing after it happens."""


class KillBeforeFinalEvaluation(L.Callback):
    """Stops the run in on_train_end, after the final checkpoint and the end-of-training records
    of the callbacks before it, before the metrics callback's final evaluation."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise KilledAtTheEnd


@pytest.fixture(autouse=True)
def _default_handlers() -> Iterator[None]:
    """Whatever a run does to the handlers, pytest gets its own Ctrl-C back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _rows(path: Path) -> list[dict[str, str]]:
    """A record file's rows with their non-empty cells, without the wall-clock ones."""
    if path.suffix == ".jsonl":
        return [{k: str(v) for k, v in json.loads(line).items() if k != TRAIN_SECONDS}
                for line in path.read_text().splitlines()]
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if v != "" and not k.startswith(TIMING_PREFIX)}
                for row in csv.DictReader(f)]


def _history(run_dir: Path) -> dict[str, list[dict[str, str]]]:
    """The rows of every record file of the run, by path in the run directory."""
    paths = [run_dir / name for name in RECORD_FILES] + sorted(run_dir.glob(DIAGNOSTICS_CSV))
    return {str(path.relative_to(run_dir)): _rows(path) for path in paths}


def _checkpoint_kimg(run_dir: Path) -> float:
    state = torch.load(run_dir / "checkpoints" / LAST, weights_only=True)
    return state["dgan"]["cur_nimg"] / 1000


def _assert_same_history(run_dir: Path, reference: dict[str, list[dict[str, str]]]) -> None:
    resumed = _history(run_dir)
    assert sorted(resumed) == sorted(reference)
    for name, rows in reference.items():
        assert resumed[name] == rows, name


def _past_checkpoint(run_dir: Path) -> bool:
    """Whether the interrupted part left metrics.csv rows after the checkpoint's kimg."""
    return any(float(row["kimg"]) > CHECKPOINT_KIMG for row in _rows(run_dir / "metrics.csv")
               if "kimg" in row)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, list[dict[str, str]]]]:
    """The uninterrupted run: its directory and its record files."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    fit_in_process(RUN, run_dir)
    history = _history(run_dir)
    assert {"diagnostics/p_T.csv", "diagnostics/d_by_t.csv"} <= set(history)
    assert all(history.values()), "every record file has rows"
    steps = [int(row["step"]) for row in history["metrics.csv"]]
    assert steps == sorted(steps) and steps[-1] >= STOP_STEP
    # The lazy R1 loss is in the records of the steps that computed it, and in no other.
    r1_steps = [row["step"] for row in history["metrics.csv"] if "loss/D_r1" in row]
    assert r1_steps == R1_RECORD_STEPS
    return run_dir, history


def test_sigkill_then_resume_auto_gives_the_uninterrupted_history(tmp_path: Path,
                                                                   reference) -> None:
    run_dir = tmp_path / "run"
    # A process of its own, killed by SIGKILL at the end of STOP_STEP. The probe is passed to
    # the trainer, not named in the config: a checkpoint's config may name only dgan's classes.
    child = (f"from pathlib import Path; from {__name__} import RUN, SignalAt; "
             "from tests.conftest import fit_in_process; "
             f"fit_in_process(RUN, Path({str(run_dir)!r}), SignalAt({STOP_STEP}, ['SIGKILL']))")
    killed = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            timeout=CHILD_TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _checkpoint_kimg(run_dir) == pytest.approx(CHECKPOINT_KIMG)
    assert _past_checkpoint(run_dir)
    fit_in_process([*RUN, "resume=auto"], run_dir)
    _assert_same_history(run_dir, reference[1])


def test_sigterm_then_resume_auto_gives_the_uninterrupted_history(tmp_path: Path,
                                                                   reference) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted) as stop:
        fit_in_process(RUN, run_dir, SignalAt(STOP_STEP, ["SIGTERM"]))
    # The checkpoint of the stop, one step on: nothing past it to drop.
    assert _checkpoint_kimg(run_dir) == pytest.approx(stop.value.kimg)
    assert stop.value.kimg > CHECKPOINT_KIMG
    fit_in_process([*RUN, "resume=auto"], run_dir)
    _assert_same_history(run_dir, reference[1])


def test_double_ctrl_c_then_resume_auto_gives_the_uninterrupted_history(tmp_path: Path,
                                                                        reference) -> None:
    run_dir = tmp_path / "run"
    # The second Ctrl-C aborts without a checkpoint: resume=auto continues from the last one.
    with pytest.raises(SystemExit):
        fit_in_process(RUN, run_dir, SignalAt(STOP_STEP, ["SIGINT", "SIGINT"]))
    assert _checkpoint_kimg(run_dir) == pytest.approx(CHECKPOINT_KIMG)
    assert _past_checkpoint(run_dir)
    fit_in_process([*RUN, "resume=auto"], run_dir)
    _assert_same_history(run_dir, reference[1])


def test_resume_from_a_kept_snapshot_gives_the_uninterrupted_history(tmp_path: Path,
                                                                     reference) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference[0], run_dir)
    # The snapshot kept mid-run, found by what it holds rather than by its name.
    kept = {path: torch.load(path, weights_only=True)["dgan"]["cur_nimg"] / 1000
            for path in (run_dir / "checkpoints").glob(SNAPSHOTS)}
    snapshot = next(path for path, kimg in kept.items()
                    if kimg == pytest.approx(CHECKPOINT_KIMG))
    fit_in_process([*RUN, f"resume={snapshot}"], run_dir)
    _assert_same_history(run_dir, reference[1])


def test_kill_before_the_final_evaluation_then_resume_auto_gives_the_uninterrupted_history(
        tmp_path: Path, reference) -> None:
    run_dir = tmp_path / "run"
    run = build_run(compose_train(RUN, run_dir))
    callbacks = run.trainer.callbacks
    at = next(i for i, cb in enumerate(callbacks) if isinstance(cb, MetricsCallback))
    callbacks.insert(at, KillBeforeFinalEvaluation())
    with pytest.raises(KilledAtTheEnd):
        run.trainer.fit(run.module, datamodule=run.datamodule)
    # Records at the last kimg that the final checkpoint does not hold: the run that completes
    # the evaluation writes them again.
    history = torch.load(run_dir / "checkpoints" / LAST, weights_only=True)[HISTORY_KEY]
    assert history["run_dir"] == str(run_dir.resolve())
    at_checkpoint, now = history["counts"], record_counts(run_dir)
    assert any(count > at_checkpoint.get(name, 0) for name, count in now.items()), now
    resumed = fit_in_process([*RUN, "resume=auto"], run_dir)
    assert resumed.finish_only
    _assert_same_history(run_dir, reference[1])


def test_trim_to_counts_keeps_the_records_a_checkpoint_counted(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("kimg,a\n1,x\n1,y\n")
    (tmp_path / "metrics.jsonl").write_text('{"kimg": 1}\n')
    counts = record_counts(tmp_path)
    assert counts == {"metrics.csv": 2, "metrics.jsonl": 1}
    # What the end of training wrote after the checkpoint, at the same kimg.
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("1,z\n")
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"kimg": 1, "final": 1}\n')
    (tmp_path / "diagnostics").mkdir()
    (tmp_path / "diagnostics" / "new.csv").write_text("kimg,b\n1,2\n")
    changed = trim_to_counts(tmp_path, counts)
    assert sorted(p.name for p in changed) == ["metrics.csv", "metrics.jsonl", "new.csv"]
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["kimg,a", "1,x", "1,y"]
    assert (tmp_path / "metrics.jsonl").read_text() == '{"kimg": 1}\n'
    assert (tmp_path / "diagnostics" / "new.csv").read_text().splitlines() == ["kimg,b"]
    assert trim_to_counts(tmp_path, counts) == []
