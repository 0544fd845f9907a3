"""Checkpoints that are never half-written: save to a temporary file, then rename."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from dgan.callbacks.cadence import EveryKimg, kimg_tag
from dgan.files.atomic import atomic_path
from dgan.tracking.records import flush_deferred_records, log_checkpoint
from dgan.tracking.run_history import record_counts

LAST = "last.ckpt"
SNAPSHOT_PREFIX = "kimg"


def snapshot_name(kimg: float) -> str:
    """File name of the snapshot kept at ``kimg`` (``keep_snapshots``)."""
    return f"{SNAPSHOT_PREFIX}{kimg_tag(kimg)}.ckpt"


def snapshot_kimg(path: Path) -> float | None:
    """The kimg a snapshot's file name carries (None: not a snapshot's name)."""
    text = path.name.removeprefix(SNAPSHOT_PREFIX).removesuffix(".ckpt")
    if not path.name.startswith(SNAPSHOT_PREFIX) or not path.name.endswith(".ckpt"):
        return None
    try:
        return float(text)
    except ValueError:
        return None
# The checkpoint's entry with the run directory and the number of records of each of its record
# files when it was written (dgan.tracking.run_history.record_counts).
HISTORY_KEY = "dgan_history"


def flush_loggers(trainer: L.Trainer) -> None:
    """Write out every record made so far: the callbacks' held records, the loggers' buffers.

    A checkpoint is where a resumed run starts; its history files must hold everything logged
    before it, since what a crash loses after the last write is never logged again.

    Args:
        trainer: the trainer whose callbacks and loggers are flushed (call it on every rank).
    """
    flush_deferred_records(trainer)
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.save()


def save_checkpoint_atomic(trainer: L.Trainer, path: str | Path) -> None:
    """Save the trainer's state to ``path`` atomically. Call it on every rank."""
    flush_loggers(trainer)
    if trainer.is_global_zero:
        with atomic_path(path) as tmp:
            # weights_only=False: the full state (optimizers, callbacks), said so Lightning does
            # not log that it chose it.
            trainer.save_checkpoint(tmp, weights_only=False)  # collective: rank 0 writes
    else:
        trainer.save_checkpoint(path, weights_only=False)  # writes nothing off rank 0, joins
    trainer.strategy.barrier("dgan_checkpoint")


class KimgCheckpoint(L.Callback):
    """Writes ``checkpoints/last.ckpt`` every ``every_kimg`` and at the end of training.

    Args:
        dirpath: directory of the checkpoints.
        every_kimg: period in thousands of images (0: only at the end).
        keep_snapshots: also keep a copy named by its kimg at each save, ``kimg000080.ckpt``
            (``kimg000000.800.ckpt`` where kimg is not whole: :func:`kimg_tag`), the snapshots
            ``dgan.evaluate ckpt=RUN_DIR`` scores after the fact.
    """

    def __init__(self, dirpath: str | Path, every_kimg: float = 50.0,
                 keep_snapshots: bool = False) -> None:
        self.dirpath = Path(dirpath)
        self.keep_snapshots = keep_snapshots
        self.cadence = EveryKimg(every_kimg)
        self._due = False  # a periodic save is due at the start of the next step

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        path = self.dirpath / LAST
        save_checkpoint_atomic(trainer, path)
        if self.keep_snapshots:
            save_checkpoint_atomic(trainer, self.dirpath / snapshot_name(pl_module.kimg))
        if trainer.is_global_zero:
            # W&B archives it when logger.wandb.log_model=true; other loggers ignore it.
            log_checkpoint(trainer, path, pl_module.kimg,
                           aliases=["latest", f"kimg{pl_module.kimg:.1f}"])
        return path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.cadence.due(pl_module.kimg, trainer.should_stop):
            self._due = True

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        # The save waits for the start of the next step: by then every callback has finished
        # the last one (the adaptive update runs after this callback), so the checkpoint holds
        # one consistent point between two steps, where a resumed run starts.
        if self._due:
            self._due = False
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # Every save flushes the records first (save_checkpoint_atomic), so the counts are where
        # the history stands at this checkpoint; the final one is followed by records at the
        # same kimg (the end-of-training evaluation) that a resume must tell apart.
        if trainer.is_global_zero:
            root = Path(trainer.default_root_dir).resolve()
            checkpoint[HISTORY_KEY] = {"run_dir": str(root), "counts": record_counts(root)}

    def state_dict(self) -> dict[str, Any]:
        return {**self.cadence.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.cadence.load_state_dict(state_dict)
