"""Nothing lost at the end (issue 27, item 5): a run killed between its last checkpoint (written
at the final kimg) and its final evaluation is completed by ``resume=auto``: the final
evaluation and the summary run, no training step is repeated."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest

from dgan.assembly.builder import build_run
from dgan.callbacks.metrics import SUMMARY_FILE, MetricsCallback
from dgan.core.errors import ConfigError
from dgan.files.run_files import METRICS_FILE, TRAIN_SECONDS

from .conftest import QUIET_TOY, compose_train, fit_in_process

TOY_METRICS = [*QUIET_TOY, "metrics=toy", "metrics.metrics=[mode_coverage500]",
               "metrics.batch_size=500", "metrics.every_kimg=0.128", "kimg=0.2"]


class KilledBeforeFinalEvaluation(Exception):
    """What SIGKILL does to a run at that moment: nothing after it happens."""


class KillAtFinalEvaluation(L.Callback):
    """Stops the run in on_train_end after the checkpoint callback saved last.ckpt, before the
    metrics callback's final evaluation (callbacks run in list order)."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise KilledBeforeFinalEvaluation


def _loss_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("loss/G")]


def _records(path) -> list[dict]:
    """metrics.jsonl's records without their wall-clock field."""
    return [{k: v for k, v in json.loads(line).items() if k != TRAIN_SECONDS}
            for line in path.read_text().splitlines()]


def test_resume_auto_completes_a_run_killed_before_its_final_evaluation(tmp_path) -> None:
    reference = fit_in_process(TOY_METRICS, tmp_path / "reference")
    expected_rows = _records(tmp_path / "reference" / METRICS_FILE)
    expected_summary = json.loads((tmp_path / "reference" / SUMMARY_FILE).read_text())

    run_dir = tmp_path / "killed"
    run = build_run(compose_train(TOY_METRICS, run_dir))
    callbacks = run.trainer.callbacks
    at = next(i for i, cb in enumerate(callbacks) if isinstance(cb, MetricsCallback))
    callbacks.insert(at, KillAtFinalEvaluation())
    with pytest.raises(KilledBeforeFinalEvaluation):
        run.trainer.fit(run.module, datamodule=run.datamodule)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / SUMMARY_FILE).exists()
    rows = _records(run_dir / METRICS_FILE)
    assert len(rows) == len(expected_rows) - 1  # the final row is what was lost
    steps, losses = run.module.cur_step, _loss_rows(run_dir)

    resumed = fit_in_process([*TOY_METRICS, "resume=auto"], run_dir)
    assert resumed.finish_only
    assert resumed.module.cur_step == steps == reference.module.cur_step  # no step repeated
    assert _loss_rows(run_dir) == losses
    assert _records(run_dir / METRICS_FILE) == expected_rows
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["final"] == expected_summary["final"]

    # Complete now: a further resume=auto is refused as before.
    with pytest.raises(ConfigError, match="already reached"):
        build_run(compose_train([*TOY_METRICS, "resume=auto"], run_dir))
