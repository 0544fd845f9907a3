"""Pre-emption: on SIGTERM or SIGUSR1, save a checkpoint between two steps and stop the run.

The signal handler only records the signal. At the start of the next step every rank learns
whether any rank was signalled (one small all-reduce in DDP), and then all of them together
write ``checkpoints/last.ckpt`` atomically and raise :class:`Preempted`, which
``python -m dgan.train`` turns into a clean exit with ``exit_code``. Saving between two steps,
after every callback has finished the last one, is what makes ``resume=auto`` continue exactly
where the run stopped; a signal that arrives during the last step lets the run finish normally.

Lightning's own SIGTERM handler (installed for the fit) raises an error at the end of the step
instead and, in DDP, broadcasts from inside the handler; this callback replaces it while
training runs, and Lightning restores the original handlers when the fit ends.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch

from dgan.callbacks.checkpoint import LAST, save_checkpoint_atomic

# The signals a scheduler sends before it stops a job: SIGTERM (scancel, Kubernetes, docker
# stop, the end of a SLURM time limit) and SIGUSR1 (SLURM's --signal warning, by convention).
DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR1")


class Preempted(Exception):  # noqa: N818 - it is an event, not an error
    """Training stopped on a signal after saving a checkpoint.

    Args:
        signal_name: the signal received (e.g. SIGTERM).
        checkpoint: the checkpoint written.
        kimg: thousands of images shown when the run stopped.
        exit_code: the process exit status the entry point should use.
    """

    def __init__(self, signal_name: str, checkpoint: Path, kimg: float, exit_code: int) -> None:
        super().__init__(f"{signal_name}: saved {checkpoint} at kimg {kimg:.3f}")
        self.signal_name = signal_name
        self.checkpoint = checkpoint
        self.kimg = kimg
        self.exit_code = exit_code


class PreemptionCheckpoint(L.Callback):
    """Turns a pre-emption signal into a checkpoint at the next step boundary and a clean stop.

    Args:
        dirpath: directory of the checkpoint (``last.ckpt`` in it, what ``resume=auto`` reads).
        signals: names of the signals that mean "save and stop", e.g. [SIGTERM, SIGUSR1].
        exit_code: exit status of a pre-empted run (0: a clean exit).
    """

    def __init__(self, dirpath: str | Path, signals: list[str] | tuple[str, ...] = DEFAULT_SIGNALS,
                 exit_code: int = 0) -> None:
        valid = sorted(s.name for s in signal.valid_signals() if isinstance(s, signal.Signals))
        for name in signals:
            if name not in valid or name in ("SIGKILL", "SIGSTOP"):
                raise ValueError(f"signals: {name!r} is not a signal that can be caught; "
                                 f"use names like SIGTERM, SIGUSR1, SIGUSR2")
        self.dirpath = Path(dirpath)
        self.signals = [signal.Signals[name] for name in signals]
        self.exit_code = int(exit_code)
        self.received: signal.Signals | None = None
        self._trainer: L.Trainer | None = None
        self._previous: dict[signal.Signals, Any] = {}

    # ----------------------------------------------------------------- handlers

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = signal.Signals(signum)
        launcher = getattr(self._trainer.strategy, "launcher", None) if self._trainer else None
        procs = getattr(launcher, "procs", None)
        if first and procs:
            # Ranks that Lightning started from this process get the same signal, so that a
            # `kill` of the main process stops the whole run the same way.
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        self._trainer = trainer
        for sig in self.signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def _restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._restore_handlers()

    # ----------------------------------------------------------------- the stop

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        received = self.received is not None
        if trainer.world_size > 1:
            # Ranks may be signalled at different steps (or only rank 0): all stop together.
            flag = torch.tensor(float(received), device=pl_module.device)
            received = bool(trainer.strategy.reduce(flag, reduce_op="sum") > 0)
        if not received:
            return
        path = self.dirpath / LAST
        save_checkpoint_atomic(trainer, path)
        name = self.received.name if self.received is not None else "a signal on another rank"
        if trainer.is_global_zero:
            print(f"[dgan] {name}: checkpoint saved to {path} at kimg {pl_module.kimg:.3f}; "
                  f"continue with resume=auto hydra.run.dir={path.parent.parent} "
                  f"(or resume={path})", flush=True)
        raise Preempted(name, path, pl_module.kimg, self.exit_code)
