"""The console of a run: a rich progress bar in kimg, and StyleGAN2-ADA's status line per tick.

The training "epoch" never ends (the length is kimg, counted by the module), so Lightning's bars
show ``Epoch 0: 20/?``. This bar counts kimg done out of the run's total, with the percentage,
the ETA, sec/kimg, p, T and the losses. Every ``tick_kimg`` (and after the first step, and at the
end) one plain status line is printed, as StyleGAN2-ADA's ``log.txt``, with the kimg done of the
total, the percentage and the time left: it reaches ``train.log``
in the run directory with everything else printed (see :mod:`dgan.files.console_log`) and shows
the progress where no terminal draws a bar (batch jobs, CI).

Only host-side counters are read at each refresh; p and T come from the values the adaptive
update already sent to the bar, read from the device only at a tick.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from dgan.callbacks.throughput import peak_memory_gib
from dgan.files.console_log import ConsoleLog

# Keys the bar shows in their own columns (the rest of the bar's metrics follow as key=value).
OWN_COLUMNS = ("kimg", "sec/kimg", "p", "T")
SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600
STATUS_PREFIX = "[dgan]"
CPU = torch.device("cpu")


# Columns of the bar's console when the output is not a terminal: wider than any bar line.
UNBOUNDED_WIDTH = 1000


def format_time(seconds: float) -> str:
    """StyleGAN2-ADA's ``dnnlib.util.format_time``: 12s, 3m 04s, 1h 02m 03s."""
    s = int(round(seconds))
    if s < SECONDS_PER_MINUTE:
        return f"{s}s"
    if s < SECONDS_PER_HOUR:
        return f"{s // SECONDS_PER_MINUTE}m {s % SECONDS_PER_MINUTE:02d}s"
    return (f"{s // SECONDS_PER_HOUR}h {(s // SECONDS_PER_MINUTE) % SECONDS_PER_MINUTE:02d}m "
            f"{s % SECONDS_PER_MINUTE:02d}s")


def kimg_text(kimg: float, total: float) -> str:
    """``kimg done/total``: one decimal for runs of 10 kimg and more, whole images below."""
    return f"{kimg:.{1 if total >= 10 else 3}f}/{total:g}"


def _number(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


class KimgProgress(ProgressBar):
    """Progress in kimg on a rich bar, and one status line per tick.

    Args:
        refresh_rate: redraw the bar every N training steps (0: no bar, status lines only).
        tick_kimg: print a status line every this many kimg (StyleGAN2-ADA's kimg_per_tick).
        leave: keep the finished bar on screen.
    """

    def __init__(self, refresh_rate: int = 10, tick_kimg: float = 4.0, leave: bool = True
                 ) -> None:
        super().__init__()
        if refresh_rate < 0:
            raise ValueError(f"refresh_rate={refresh_rate} must be an integer >= 0")
        if tick_kimg <= 0:
            raise ValueError(f"tick_kimg={tick_kimg} must be > 0")
        self.refresh_rate = refresh_rate
        self.tick_kimg = float(tick_kimg)
        self.leave = leave
        self._enabled = True
        self._progress: Any = None
        self._task: Any = None
        self._log: ConsoleLog | None = None
        self._start = 0.0
        self._tick = 0
        self._tick_time = 0.0
        self._tick_kimg = 0.0
        self._start_kimg = 0.0
        self._next_tick_kimg = 0.0
        self._first_step_done = False
        self.status_lines: list[str] = []

    # ------------------------------------------------------------------ ProgressBar

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.refresh_rate > 0

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._tick_time = time.perf_counter()
        self._tick_kimg = self._start_kimg = pl_module.kimg
        self._next_tick_kimg = pl_module.kimg + self.tick_kimg
        self._first_step_done = False
        if trainer.is_global_zero and self.is_enabled:
            self._start_bar(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        first = not self._first_step_done
        self._first_step_done = True
        if self._progress is not None and (
            first or pl_module.cur_step % self.refresh_rate == 0 or trainer.should_stop
        ):
            self._refresh(trainer, pl_module)
        # The first line as soon as one step is done, as StyleGAN2-ADA's tick 0.
        if first or pl_module.kimg >= self._next_tick_kimg:
            self._status(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if self._progress is not None:
            self._refresh(trainer, pl_module)
        if pl_module.kimg > self._tick_kimg:
            self._status(trainer, pl_module)
        self._stop_bar()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop_bar()  # also after an exception: the terminal gets its cursor back

    # ------------------------------------------------------------------ the bar

    def _start_bar(self, pl_module: L.LightningModule) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self._log = ConsoleLog.current()
        # The bar is drawn on the terminal only: train.log gets the status lines instead.
        terminal = self._log.terminal if self._log is not None else sys.stdout
        # Without a terminal (a pipe, a batch job's output file) rich assumes 80 columns and
        # cuts the bar's last line short; a file has no width to fit, so give it all of it.
        width = None if getattr(terminal, "isatty", lambda: False)() else UNBOUNDED_WIDTH
        console = Console(file=terminal, soft_wrap=True, width=width)  # status lines: one line
        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            TextColumn("{task.completed:.1f}/{task.total:g} kimg"),
            TaskProgressColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=not self.leave,
            # Prints during the bar go above it; through the console log when there is one,
            # so that they reach train.log too.
            redirect_stdout=self._log is None,
            redirect_stderr=self._log is None,
        )
        self._progress.start()
        if self._log is not None:
            self._log.show_through(console)
        self._task = self._progress.add_task("train", total=float(pl_module.total_kimg),
                                             completed=pl_module.kimg, stats="")

    def _refresh(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._progress.update(self._task, completed=min(pl_module.kimg, pl_module.total_kimg),
                              stats=self.stats(trainer, pl_module))

    def stats(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """The bar's text after the ETA: sec/kimg, p, T and the losses (what is known yet)."""
        shown = dict(trainer.progress_bar_metrics)
        parts = []
        speed = self._progress.tasks[0].speed if self._progress is not None else None
        if speed:
            parts.append(f"sec/kimg {1 / speed:.2f}")
        diffusion = getattr(pl_module, "diffusion", None)
        if diffusion is not None:
            if "p" not in shown:  # before the first record: the values are the initial ones
                shown["p"], shown["T"] = _number(diffusion.p), _number(diffusion.T)
            parts.append(f"p {_number(shown['p']):.3f} T {_number(shown['T']):.0f}")
        parts += [f"{key} {_number(value):.3g}" for key, value in shown.items()
                  if key not in OWN_COLUMNS]
        return "  ".join(parts)

    def _stop_bar(self) -> None:
        if self._progress is None:
            return
        if self._log is not None:
            self._log.show_through(None)
        self._progress.stop()
        self._progress = None

    # ------------------------------------------------------------------ status lines

    def time_left(self, kimg: float, total: float, elapsed: float) -> str:
        """The time to reach ``total`` kimg at the speed of this process so far (``-`` before
        any progress).

        Args:
            kimg: kimg done.
            total: the run's length in kimg.
            elapsed: seconds since training started in this process.
        """
        done = kimg - self._start_kimg
        if kimg >= total:
            return "0s"
        if done <= 0 or elapsed <= 0:
            return "-"
        return format_time(elapsed / done * (total - kimg))

    def _status(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        kimg = pl_module.kimg
        tick_seconds = now - self._tick_time
        tick_kimg = kimg - self._tick_kimg
        total = float(pl_module.total_kimg)
        done = kimg_text(kimg, total)
        fields = [
            f"tick {self._tick:<5d}",
            f"kimg {done:<13s}",
            f"{min(kimg / total, 1.0) if total > 0 else 1.0:>4.0%}",
            f"time {format_time(now - self._start):<12s}",
            f"left {self.time_left(kimg, total, now - self._start):<12s}",
            f"sec/tick {tick_seconds:<7.1f}",
            f"sec/kimg {tick_seconds / tick_kimg if tick_kimg > 0 else 0.0:<7.2f}",
            f"cpumem {peak_memory_gib(CPU):<6.2f}",
        ]
        if pl_module.device.type == "cuda":
            fields.append(f"gpumem {peak_memory_gib(pl_module.device):<6.2f}")
        diffusion = getattr(pl_module, "diffusion", None)
        if diffusion is not None:
            fields.append(f"p {_number(diffusion.p):<6.3f} T {_number(diffusion.T):.0f}")
        line = f"{STATUS_PREFIX} {' '.join(fields)}".rstrip()
        self.status_lines.append(line)
        print(line, flush=True)
        self._tick += 1
        self._tick_time, self._tick_kimg = now, kimg
        while self._next_tick_kimg <= kimg:
            self._next_tick_kimg += self.tick_kimg
