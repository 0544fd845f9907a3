"""The console and the run directory: kimg progress, status lines, train.log, no known warnings,
files 0644 (issue 17, items 5 and 6)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

from dgan.assembly.builder import build_run
from dgan.callbacks.progress import KimgProgress, format_time
from dgan.config.warnings import quiet_known_warnings
from dgan.files.console_log import ConsoleLog

from .conftest import REPO, compose_train

TINY = ["experiment=gaussians25", "model.generator.hidden=32", "model.discriminator.hidden=32",
        "model.batch_size=64", "kimg=0.5"]
# Lightning's warnings of every run before they were fixed (issue 17).
KNOWN_WARNINGS = ("eval mode", "LeafSpec", "exists and is not empty", "weights_only",
                  "Tip:")
RUN_FILE_MODE = 0o644


def test_progress_counts_kimg_and_prints_status_lines_from_the_first_step(tmp_path, capsys
                                                                          ) -> None:
    cfg = compose_train([*TINY, "callbacks.progress.tick_kimg=0.2"], tmp_path / "run")
    run = build_run(cfg)
    bar = next(cb for cb in run.trainer.callbacks if isinstance(cb, KimgProgress))
    assert run.trainer.progress_bar_callback is bar
    run.trainer.fit(run.module, datamodule=run.datamodule)
    out = capsys.readouterr().out
    # Tick 0 after the first step (64 images), one per 0.2 kimg, one at the end.
    ticks = bar.status_lines
    assert [line.split()[2] for line in ticks] == ["0", "1", "2", "3"]
    # kimg done of the total, the percent and the time left, for logs without a bar (issue 25).
    assert ticks[0].split()[3:6] == ["kimg", "0.064/0.5", "13%"]
    assert ticks[-1].split()[3:6] == ["kimg", "0.512/0.5", "100%"]
    assert " left 0s " in ticks[-1] and " left " in ticks[1]
    for word in ("time", "sec/tick", "sec/kimg", "cpumem", "p", "T"):
        assert f" {word} " in ticks[-1], word
    assert all(line in out for line in ticks)
    # The final bar: kimg done / total, percent, ETA, sec/kimg, p and T; no epochs.
    assert "0.5/0.5 kimg" in out and "100%" in out and "ETA" in out
    assert "sec/kimg" in out and " p 0." in out and " T " in out
    assert "Epoch" not in out


def test_stats_show_p_and_T_before_the_first_record(tmp_path) -> None:
    cfg = compose_train(TINY, tmp_path / "run")
    run = build_run(cfg)
    bar = next(cb for cb in run.trainer.callbacks if isinstance(cb, KimgProgress))
    text = bar.stats(run.trainer, run.module)
    assert text == f"p 0.000 T {int(run.module.diffusion.T)}"


def test_format_time_as_stylegan2_ada() -> None:
    assert [format_time(s) for s in (4.4, 65, 3723)] == ["4s", "1m 05s", "1h 02m 03s"]


def test_console_log_copies_stdout_and_stderr_and_restores_them(tmp_path) -> None:
    before = sys.stdout, sys.stderr
    with ConsoleLog(tmp_path / "train.log") as log:
        assert ConsoleLog.current() is log
        print("to stdout")
        print("to stderr", file=sys.stderr)
    assert (sys.stdout, sys.stderr) == before and ConsoleLog.current() is None
    assert (tmp_path / "train.log").read_text() == "to stdout\nto stderr\n"


def test_known_warnings_are_gone_from_a_run(tmp_path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        cfg = compose_train(TINY, tmp_path / "run")
        run = build_run(cfg)
        run.trainer.fit(run.module, datamodule=run.datamodule)
    texts = [str(w.message) for w in caught]
    assert not [t for t in texts if any(k in t for k in KNOWN_WARNINGS)], texts


def test_cli_run_writes_train_log_and_0644_files_and_no_warnings(tmp_path) -> None:
    run_dir = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "dgan.train", *TINY, "callbacks.samples.every_kimg=0.25",
         f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    # Everything printed, and a status line per tick.
    for text in (f"[dgan] run directory: {run_dir}", "[dgan] tick 0 ", "[dgan] finished at kimg"):
        assert text in log, text
    assert "\x1b[" not in log  # the bar is drawn on the terminal only
    printed = res.stdout + res.stderr
    assert not [k for k in KNOWN_WARNINGS if k in printed], printed[-3000:]
    assert "warn" not in printed.lower(), printed[-3000:]
    # Every file of the run directory is readable by the group and others.
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    modes = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert {name: oct(m) for name, m in modes.items() if m != RUN_FILE_MODE} == {}
    assert Path(run_dir / "checkpoints" / "last.ckpt") in files
