"""``dgan.evaluate`` on a checkpoint, with nothing but the checkpoint given, reproduces the value
the run wrote to ``metrics.jsonl`` for it, to the last digit: same G (G_ema), latents, noise
inputs (drawn per batch, so the run's metrics batch size), reals (the run's reference set).
Over a run directory of snapshots it gives the metrics against kimg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dgan.core.errors import ConfigError
from dgan.evaluate import DEFAULT_BATCH_SIZE, EvaluateOptions, run
from dgan.files.run_files import read_metrics

from .conftest import fit_in_process

# A run's metrics batch size other than evaluate's own default, so that a default taken from
# evaluate instead of from the run would draw other noise and show in the value.
RUN_BATCH = 48
METRICS = ["fid_digits100_full", "pr_digits100_k3_full"]
# A smoke-test run of the default job, with its metrics evaluated once, at the end.
TINY_RUN = [
    "experiment=digits_stylegan2",
    "debug=default",
    "metrics=digits",
    f"metrics.metrics=[{','.join(METRICS)}]",
    f"metrics.batch_size={RUN_BATCH}",
    "metrics.every_kimg=0",
    "logger=none",
]


def test_evaluate_on_the_last_checkpoint_equals_the_last_metrics_row(tmp_path: Path) -> None:
    assert RUN_BATCH != DEFAULT_BATCH_SIZE
    run_dir = tmp_path / "run"
    fit_in_process(TINY_RUN, run_dir)
    last = read_metrics(run_dir)[-1]
    results = run(EvaluateOptions(ckpt=str(run_dir / "checkpoints" / "last.ckpt"),
                                  outdir=str(tmp_path / "eval"), device="cpu")).results
    assert set(results) <= set(last)
    assert len(results) == len(METRICS) + 1  # fid, precision, recall
    for key, value in results.items():
        assert value == last[key], key


def test_evaluate_over_the_snapshots_gives_the_metric_against_kimg(tmp_path: Path) -> None:
    # Metrics and snapshots at the same points: each snapshot's score is the run's own row.
    run_dir = tmp_path / "run"
    fit_in_process([*TINY_RUN, "metrics.every_kimg=0.02", "callbacks.checkpoint.every_kimg=0.02",
                    "callbacks.checkpoint.keep_snapshots=true"], run_dir)
    logged = {row["kimg"]: row for row in read_metrics(run_dir)}
    done = run(EvaluateOptions(ckpt=str(run_dir), device="cpu"))
    rows = [json.loads(line) for line in done.path.read_text().splitlines()]
    assert done.path == run_dir / "checkpoints" / "metrics-snapshots.jsonl"
    assert done.path.with_suffix(".png").stat().st_size > 0
    kimgs = [row["kimg"] for row in rows]
    assert len(kimgs) >= 2 and kimgs == sorted(kimgs) and kimgs[-1] == 0.04
    for row in rows:
        assert Path(row["ckpt"]).name.startswith("kimg")
        for key in (k for k in row if k not in ("kimg", "ckpt")):
            assert row[key] == logged[row["kimg"]][key], (row["kimg"], key)


def test_a_folder_without_snapshots_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep_snapshots=true") as err:
        run(EvaluateOptions(ckpt=str(tmp_path), device="cpu"))
    assert "\n" not in str(err.value)
