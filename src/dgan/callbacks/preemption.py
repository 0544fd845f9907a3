"""Pre-emption: on SIGTERM, SIGUSR1 or SIGINT, save a checkpoint between two steps and stop.

The signal handler only records the signal. At the start of the next step every rank learns
whether any rank was signalled (one small all-reduce in DDP), and then all of them together
write ``checkpoints/last.ckpt`` atomically and raise :class:`Preempted`, which
``python -m dgan.train`` turns into a clean exit with ``exit_code``. Saving between two steps,
after every callback has finished the last one, is what makes ``resume=auto`` continue exactly
where the run stopped; a signal that arrives during the last step lets the run finish normally.

Ctrl-C (SIGINT) is one of them: the first saves and stops like SIGTERM, a second one aborts at
once without a checkpoint (``KeyboardInterrupt``). A terminal sends Ctrl-C to every process of
the job, so SIGINT is not passed on to the ranks Lightning started; other signals are.

Lightning's own SIGTERM handler (installed for the fit) raises an error at the end of the step
instead and, in DDP, broadcasts from inside the handler; this callback replaces it while
training runs, and Lightning restores the original handlers when the fit ends.

Once training has completed, a signal changes nothing: the final checkpoint is written or being
written, so the run finishes its last evaluations and exits 0. :class:`SignalGuard` holds that
promise up to the end of ``dgan.train`` (Lightning's teardown restores the handlers it found,
which are the guard's). A corrupt image met during training (:class:`ImageFileError`) is a
stop too: one process saves the checkpoint before the error leaves ``fit``.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import lightning as L
import torch

from dgan.callbacks.checkpoint import LAST, save_checkpoint_atomic
from dgan.data.images import ImageFileError

# The signals a scheduler sends before it stops a job: SIGTERM (scancel, Kubernetes, docker
# stop, the end of a SLURM time limit) and SIGUSR1 (SLURM's --signal warning, by convention),
# and the user's Ctrl-C (SIGINT).
DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")
STDERR_FD = 2
# Set when a fit's training loop is over (module-wide: one dgan.train process runs one fit at a
# time); SignalGuard reads it, and clears it when it starts guarding a run.
_TRAINING_DONE = threading.Event()


def _say(text: str) -> None:
    # From a signal handler: an unbuffered write, since print may be in the middle of a write of
    # the interrupted code to the same stream (a reentrant call).
    os.write(STDERR_FD, f"[dgan] {text}\n".encode())


def mark_training_done() -> None:
    """Training is over: from now on the guarded signals are noted and the run finishes."""
    _TRAINING_DONE.set()


def _call_previous(previous: Any, signum: int, frame: FrameType | None) -> None:
    """Do what ``previous`` (a handler as ``signal.getsignal`` gives it) does with ``signum``."""
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # SIG_DFL, or None (a handler not installed from Python): the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


# Lightning's module that fetches the training batches: an error raised through it came from
# loading the next batch.
BATCH_FETCH_MODULE = "lightning.pytorch.loops.fetchers"


def _raised_by_batch_loading(error: BaseException) -> bool:
    """Whether ``error`` came out of the training loop's fetch of the next batch."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == BATCH_FETCH_MODULE:
            return True
        tb = tb.tb_next
    return False


class SignalGuard:
    """Keeps a completed run's exit status 0 whatever signal arrives during its teardown.

    Until training is done (:func:`mark_training_done`), a guarded signal does what the handler
    found at entry does (Ctrl-C raises KeyboardInterrupt; SIGTERM ends the process); training
    itself runs under :class:`PreemptionCheckpoint`'s handlers. After it, the signal is noted in
    one line and the run goes on to its end. Use as a context manager around the whole run.

    Args:
        signals: names of the signals to guard, e.g. [SIGTERM, SIGUSR1, SIGINT].
    """

    def __init__(self, signals: list[str] | tuple[str, ...] = DEFAULT_SIGNALS) -> None:
        self.signals = [signal.Signals[name] for name in signals]
        self._previous: dict[signal.Signals, Any] = {}
        self.noted: list[str] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if _TRAINING_DONE.is_set():
            name = signal.Signals(signum).name
            self.noted.append(name)
            _say(f"{name} after training completed: finishing the run")
            return
        _call_previous(self._previous.get(signal.Signals(signum)), signum, frame)

    def __enter__(self) -> SignalGuard:
        _TRAINING_DONE.clear()
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}


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


class StoppedOnBadFile(Exception):  # noqa: N818 - it is an event, not an error
    """Training stopped on an image file it cannot read, after saving a checkpoint if it could.

    Args:
        error: the dataset's error (its text names the file).
        checkpoint: the checkpoint written, None if none could be (DDP: only one rank failed).
        kimg: thousands of images shown when the run stopped.
    """

    def __init__(self, error: ImageFileError, checkpoint: Path | None, kimg: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.file = error.file
        self.checkpoint = checkpoint
        self.kimg = kimg

    def line(self) -> str:
        """The one line that tells the user what stopped the run and how to go on."""
        if self.checkpoint is None:
            return (f"{self.error}; no checkpoint written now (the last periodic one is kept), "
                    "then continue with resume=auto")
        return (f"{self.error}; checkpoint saved to {self.checkpoint} at kimg {self.kimg:.3f}, "
                f"then continue with resume=auto hydra.run.dir={self.checkpoint.parent.parent}")


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
        self.saved_on_error: Path | None = None
        self._trainer: L.Trainer | None = None
        self._previous: dict[signal.Signals, Any] = {}

    # ----------------------------------------------------------------- handlers

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if not first and signum == signal.SIGINT:
            # The second Ctrl-C: the user does not want to wait for the checkpoint.
            _say("second SIGINT: stopping at once, without a checkpoint")
            raise KeyboardInterrupt
        if first and signum == signal.SIGINT:
            _say("SIGINT: saving a checkpoint at the next step (press Ctrl-C again to abort)")
        self.received = signal.Signals(signum)
        launcher = getattr(self._trainer.strategy, "launcher", None) if self._trainer else None
        procs = getattr(launcher, "procs", None)
        # A Ctrl-C reaches every process of the terminal's job by itself.
        if first and procs and signum != signal.SIGINT:
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

    def _note_after_training(self, signum: int, frame: FrameType | None) -> None:
        _say(f"{signal.Signals(signum).name} after training completed: finishing the run")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The training loop is over: a signal now (during the last evaluations) must not turn
        # the completed run into a failed one. Lightning restores the handlers it found (a
        # SignalGuard's, under dgan.train) when the fit returns.
        mark_training_done()
        if threading.current_thread() is threading.main_thread():
            for sig in self._previous:
                signal.signal(sig, self._note_after_training)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._restore_handlers()
        if (isinstance(exception, ImageFileError) and trainer.world_size == 1
                and _raised_by_batch_loading(exception)):
            # The loader failed on the next batch, so the state lies between two steps, where
            # a resumed run can start (an error inside a callback's hook would leave the step
            # half done). In DDP the other ranks are not here to take part in the save.
            path = self.dirpath / LAST
            save_checkpoint_atomic(trainer, path)
            self.saved_on_error = path

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
