"""Experiment tracking with kimg as the x axis: a W&B logger, and helpers that send pictures,
tables and checkpoints to whichever loggers a run has.

Lightning steps its loggers by optimizer steps (two or three per GAN iteration) or by batches,
depending on the caller; dgan's clock is kimg, the images shown. ``KimgWandbLogger`` makes kimg
the step metric of every W&B chart and adds the latest kimg to any record that lacks it.
Callbacks call the helpers below on rank 0 only; loggers without images or tables (CSV) are
skipped, the PNG and CSV files in the run directory are their record.

Records that a callback keeps back to avoid a host sync (``DeferredRecords``, e.g. p and T at
every adaptive update) are sent before anything else reaches the loggers, so that kimg never
goes back in any logger's history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from dgan.tracking.run_history import write_wandb_run_id

KIMG = "kimg"
KIMG_DECIMALS = 3  # one image
MODEL_ARTIFACT_TYPE = "model"


class KimgWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` with kimg as the x axis and checkpoints as artifacts.

    Args:
        log_checkpoints: upload each checkpoint dgan saves as a W&B model artifact (Lightning's
            own ``log_model`` only sees ModelCheckpoint, which dgan does not use).
        **kwargs: passed to ``WandbLogger`` (project, name, group, save_dir, mode, tags...).
    """

    def __init__(self, log_checkpoints: bool = False, **kwargs: Any) -> None:
        kwargs.pop("log_model", None)
        super().__init__(log_model=False, **kwargs)
        # Lightning always passes anonymous (None when unset) to wandb.init, and recent wandb
        # warns at every run that the setting has no effect: leave it out when unset.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self.log_checkpoints = bool(log_checkpoints)
        self._kimg_axis = False
        self._last_kimg: float | None = None

    @property
    def experiment(self) -> Any:
        run = WandbLogger.experiment.fget(self)  # type: ignore[attr-defined]
        if not self._kimg_axis and rank_zero_only.rank == 0 and hasattr(run, "define_metric"):
            # Declared after Lightning's trainer/global_step axis, so it replaces it for "*".
            run.define_metric(KIMG)
            run.define_metric("*", step_metric=KIMG, step_sync=True)
            self._kimg_axis = True
            if self.save_dir and run.id and not getattr(run, "disabled", False):
                # Where resume=auto finds the run to continue (a disabled run is no run).
                write_wandb_run_id(self.save_dir, run.id)
        return run

    def resume_run(self, run_id: str) -> None:
        """Continue the W&B run ``run_id`` instead of starting one (call before any logging).

        Args:
            run_id: the id a run directory recorded (``wandb_run_id.txt``).
        """
        if self._experiment is not None:
            raise RuntimeError("resume_run: the W&B run has already started")
        # Lightning's WandbLogger passes these to wandb.init (resume="allow" is its default:
        # the run continues if W&B knows it and starts under this id otherwise).
        self._wandb_init.update(id=run_id, resume="allow")
        self._id = run_id

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = dict(metrics)
        if KIMG in metrics:
            # Lightning hands over float32: round to whole images (0.001 kimg) so that the
            # axis reads 0.512, not 0.51200002, and sorts with the values logged as floats.
            self._last_kimg = round(float(metrics[KIMG]), KIMG_DECIMALS)
            metrics[KIMG] = self._last_kimg
        elif self._last_kimg is not None:
            metrics[KIMG] = self._last_kimg
        super().log_metrics(metrics, step)

    @rank_zero_only
    def declare_headline(self, key: str, higher_is_better: bool) -> None:
        """The run summary of ``key`` is its best value (max or min), not its last one."""
        self.experiment.define_metric(key, step_metric=KIMG,
                                      summary="max" if higher_is_better else "min")

    @rank_zero_only
    def log_image_file(self, key: str, path: str | Path, kimg: float,
                       caption: str | None = None) -> None:
        """Log the PNG at ``path`` under ``key`` at ``kimg``."""
        import wandb

        self.log_metrics({key: wandb.Image(str(path), caption=caption), KIMG: kimg})

    @rank_zero_only
    def log_rows(self, key: str, columns: list[str], rows: list[list[Any]], kimg: float) -> None:
        """Log a table under ``key`` at ``kimg``."""
        import wandb

        self.log_metrics({key: wandb.Table(columns=columns, data=rows), KIMG: kimg})

    @rank_zero_only
    def log_checkpoint(self, path: str | Path, kimg: float, aliases: list[str]) -> None:
        """Upload a checkpoint as a version of the run's model artifact (if asked for)."""
        if not self.log_checkpoints:
            return
        import wandb

        path = Path(path)
        run = self.experiment
        artifact = wandb.Artifact(f"model-{run.id}", type=MODEL_ARTIFACT_TYPE,
                                  metadata={KIMG: kimg, "file": path.name})
        artifact.add_file(str(path), name=path.name)  # copied: last.ckpt is overwritten later
        run.log_artifact(artifact, aliases=aliases)


class DeferredRecords:
    """A callback that holds scalar records back and sends them when ``flush_records`` is called.

    Every helper below flushes these first, so the loggers receive records in kimg order.
    """

    def flush_records(self, trainer: L.Trainer) -> None:
        raise NotImplementedError


def flush_deferred_records(trainer: L.Trainer) -> None:
    """Send the records that callbacks of ``trainer`` are holding back."""
    for callback in trainer.callbacks:
        if isinstance(callback, DeferredRecords):
            callback.flush_records(trainer)


def log_scalars(trainer: L.Trainer, scalars: dict[str, float], kimg: float,
                step: int | None = None) -> None:
    """Send scalars to every logger of ``trainer`` at ``kimg`` (after any deferred records).

    Args:
        trainer: the trainer whose loggers receive them.
        scalars: name to value.
        kimg: training progress of the values.
        step: the loggers' step (default: the training iteration now, see :func:`iteration`).
    """
    flush_deferred_records(trainer)
    write_scalars(trainer, scalars, kimg, step)


def iteration(trainer: L.Trainer) -> int:
    """The loggers' step: the training iteration, the counter Lightning gives the module's own
    records (``self.log``). ``global_step`` counts every optimizer step (2-3 per GAN iteration), so
    records stepped by it would not line up with the losses in ``metrics.csv``.

    Args:
        trainer: the running trainer.
    """
    loop = getattr(trainer, "fit_loop", None)
    epoch_loop = getattr(loop, "epoch_loop", None)
    batches = getattr(epoch_loop, "_batches_that_stepped", None)
    return int(batches) if batches is not None else int(trainer.global_step)


def align_iteration(trainer: L.Trainer, steps: int) -> None:
    """Make the loggers' step (:func:`iteration`) count ``steps`` training iterations done.

    Lightning restores a mid-epoch checkpoint as one taken inside a step, before the step was
    counted, and adds one. dgan's checkpoints lie between two steps, after the count, so
    without this a resumed run would label every record one step later than an uninterrupted
    run does.

    Args:
        trainer: the running trainer.
        steps: training iterations done (the module's ``cur_step``).
    """
    epoch_loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    if epoch_loop is not None and hasattr(epoch_loop, "_batches_that_stepped"):
        epoch_loop._batches_that_stepped = int(steps)


def write_scalars(trainer: L.Trainer, scalars: dict[str, float], kimg: float,
                  step: int | None = None) -> None:
    """``log_scalars`` without the flush: for the deferred records themselves."""
    step = iteration(trainer) if step is None else step
    for logger in trainer.loggers:  # every logger: CSV and W&B side by side
        logger.log_metrics({**scalars, KIMG: kimg}, step=step)


def log_image_file(trainer: L.Trainer, key: str, path: str | Path, kimg: float,
                   caption: str | None = None) -> None:
    """Send a PNG to every logger of ``trainer`` that takes images, at ``kimg``.

    Args:
        trainer: the trainer whose loggers receive it.
        key: name of the image series (e.g. ``samples``).
        path: the PNG file.
        kimg: training progress of the picture.
        caption: text shown under the image.
    """
    flush_deferred_records(trainer)
    for logger in trainer.loggers:
        if isinstance(logger, KimgWandbLogger):
            logger.log_image_file(key, path, kimg, caption)
        elif isinstance(logger, TensorBoardLogger):
            _tensorboard_image(logger, key, path, iteration(trainer))
        elif hasattr(logger, "log_image"):
            kwargs = {"caption": [caption]} if caption else {}
            logger.log_image(key=key, images=[str(path)], step=iteration(trainer), **kwargs)


def _tensorboard_image(logger: TensorBoardLogger, key: str, path: str | Path, step: int
                       ) -> None:
    """The PNG at ``path`` as a TensorBoard image (TensorBoard has no kimg axis: the step)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    logger.experiment.add_image(key, pixels, global_step=step, dataformats="HWC")


def declare_headline(trainer: L.Trainer, key: str, higher_is_better: bool) -> None:
    """Tell the loggers which metric is the run's headline (W&B: its min or max summary).

    Args:
        trainer: the trainer whose loggers are told.
        key: the logged name of the metric (``metrics/fid50k_full``).
        higher_is_better: whether the best value is the largest.
    """
    for logger in trainer.loggers:
        if isinstance(logger, KimgWandbLogger):
            logger.declare_headline(key, higher_is_better)


def log_rows(trainer: L.Trainer, key: str, columns: list[str], rows: list[list[Any]],
             kimg: float) -> None:
    """Send a table to every logger of ``trainer`` that takes tables, at ``kimg``.

    Args:
        trainer: the trainer whose loggers receive it.
        key: name of the table.
        columns: column names.
        rows: the rows, one list of values per row.
        kimg: training progress of the table.
    """
    flush_deferred_records(trainer)
    for logger in trainer.loggers:
        if isinstance(logger, KimgWandbLogger):
            logger.log_rows(key, columns, rows, kimg)
        elif hasattr(logger, "log_table"):
            logger.log_table(key=key, columns=columns, data=rows, step=iteration(trainer))


def log_checkpoint(trainer: L.Trainer, path: str | Path, kimg: float,
                   aliases: list[str] | None = None) -> None:
    """Offer a saved checkpoint to the loggers that archive checkpoints (W&B, when asked).

    Args:
        trainer: the trainer whose loggers receive it.
        path: the checkpoint file.
        kimg: training progress of the checkpoint.
        aliases: artifact aliases (default: latest).
    """
    for logger in trainer.loggers:
        if isinstance(logger, KimgWandbLogger):
            logger.log_checkpoint(path, kimg, aliases or ["latest"])
