"""Logs that read (issue 25, item 6): status lines with the total and the time left in a
redirected log, one step counter and whole-image kimg in metrics.csv, loss columns from a short
run, and no W&B "anonymous" warning."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

from dgan.tracking.loggers import wandb_logger

from .conftest import REPO

# A toy run of 10 steps, shorter than the trainer's log_every_n_steps (50).
SHORT_TOY = ["experiment=gaussians25", "model.generator.hidden=32",
             "model.discriminator.hidden=32", "model.batch_size=64", "kimg=0.64",
             "metrics=none", "callbacks.samples=null", "callbacks.diagnostics=null",
             "callbacks.progress.tick_kimg=0.25", "adaptive.interval=1"]


def _train(run_dir, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dgan.train", *SHORT_TOY, f"hydra.run.dir={run_dir}", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_redirected_log_shows_total_percent_and_time_left_and_csv_reads(tmp_path) -> None:
    run_dir = tmp_path / "run"
    done = _train(run_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    # stdout is a pipe here, as `python -m dgan.train > log`: the status lines carry progress.
    ticks = [line for line in done.stdout.splitlines() if line.startswith("[dgan] tick")]
    assert len(ticks) >= 3, done.stdout
    assert re.search(r"kimg 0\.064/0\.64 +10% .* left (\d+m )?\d+s ", ticks[0]), ticks[0]
    assert re.search(r"kimg 0\.640/0\.64 +100% .* left 0s ", ticks[-1]), ticks[-1]
    log = (run_dir / "train.log").read_text()
    assert all(line in log for line in ticks)

    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    # The losses of a run shorter than log_every_n_steps: its last step is recorded.
    assert any(row.get("loss/G") for row in rows), rows[0].keys()
    # kimg is a whole number of images, written as such (no float32 tails).
    for row in rows:
        if row.get("kimg"):
            assert len(row["kimg"].partition(".")[2]) <= 3, row["kimg"]
    # One step counter: iterations. Sorted by step, kimg never goes back, and every step
    # is at most the 10 iterations of the run.
    pairs = sorted((int(row["step"]), float(row["kimg"])) for row in rows if row.get("kimg"))
    assert [k for _, k in pairs] == sorted(k for _, k in pairs), pairs
    assert max(s for s, _ in pairs) < 10, pairs
    # p and T (the adaptive update's records) share the counter with the losses: 0.064 kimg
    # per iteration.
    for step, kimg in pairs:
        assert abs(kimg - 0.064 * (step + 1)) < 1e-6, (step, kimg)


def test_wandb_logger_leaves_the_anonymous_setting_out(tmp_path) -> None:
    logger = wandb_logger(save_dir=tmp_path, mode="disabled")
    assert "anonymous" not in logger._wandb_init
