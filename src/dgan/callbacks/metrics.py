"""Periodic evaluation of G_ema with named metrics; final and best values; metrics.jsonl."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dgan.callbacks.cadence import EveryKimg
from dgan.files.atomic import atomic_write_bytes
from dgan.files.run_files import append_metrics
from dgan.metrics.direction import higher_is_better
from dgan.metrics.registry import (
    MetricOptions,
    check_weights_available,
    compute_metric,
    lookup_metric,
)
from dgan.tracking.records import declare_headline, log_checkpoint, log_scalars

SUMMARY_FILE = "metrics_summary.json"
BEST_CHECKPOINT = "best.ckpt"
# What the fakes are compared with: the run's training set, or the whole dataset its subset
# (``dataset.max_size``) was drawn from, the paper's limited-data protocol.
REFERENCE_SETS = ("train", "full")


class MetricsCallback(L.Callback):
    """Evaluates ``pl_module.G_ema`` every ``every_kimg`` and at the end of training.

    Each evaluation is logged (with ``kimg``) and appended to ``metrics.jsonl`` in the run
    directory, with ``train_seconds``: the wall time spent training so far, over every resumed
    part of the run and without the evaluations themselves, so that runs evaluated at other
    cadences compare on one time axis. The *headline* metric (the first of ``metrics``) is
    tracked: its best value and the kimg where it occurred are kept, and the best checkpoint is
    saved when asked.

    Args:
        metrics: metric names (see ``dgan.metrics.available_metrics``).
        every_kimg: evaluation period in thousands of images (0: only at the end).
        run_dir: directory of metrics.jsonl and best.ckpt.
        batch_size: generation batch per rank.
        cache_dir: cache of real statistics and feature extractors.
        weights_dir: pre-downloaded feature-extractor weights (offline clusters).
        seed: seed of the evaluation latents.
        higher_is_better: for the headline metric (None: guessed from its name).
        save_best: write ``checkpoints/best.ckpt`` whenever the headline metric improves.
        reference: the reals the metrics compare with: ``train`` (the training set) or
            ``full`` (the dataset without its ``max_size`` subset; needs ``reference_dataset``).
        reference_dataset: that full dataset, built by the run builder (None: the training set).
    """

    def __init__(self, metrics: list[str], every_kimg: float = 0, run_dir: str | Path = ".",
                 batch_size: int = 64, cache_dir: str | Path | None = None,
                 weights_dir: str | Path | None = None, seed: int = 0,
                 higher_is_better: bool | None = None, save_best: bool = True,
                 reference: str = "train", reference_dataset: Any = None) -> None:
        if reference not in REFERENCE_SETS:
            raise ValueError(f"reference={reference!r} is not a reference set; valid: "
                             f"{', '.join(REFERENCE_SETS)}")
        if reference == "full" and reference_dataset is None:
            raise ValueError("reference='full' needs the full dataset as reference_dataset")
        for name in metrics:
            lookup_metric(name)  # an unknown name fails here, before training
        # Missing Inception/VGG16 weights fail now (file name and fetch command), not at the
        # first evaluation hours into the run.
        check_weights_available(metrics, weights_dir)
        self.metrics = list(metrics)
        self.run_dir = Path(run_dir)
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self.seed = seed
        self.higher_is_better = higher_is_better
        self.save_best = save_best
        self.reference = reference
        self.reference_dataset = reference_dataset
        self.cadence = EveryKimg(every_kimg)
        self.best: dict[str, float] | None = None
        self.final: dict[str, float] | None = None
        self.final_kimg: float | None = None
        self._headline_declared = False
        # Training wall time: seconds of earlier parts of the run (from the checkpoint), the
        # start of this part, and the evaluations of this part (subtracted).
        self._seconds_before = 0.0
        self._started: float | None = None
        self._evaluating = 0.0

    @property
    def headline(self) -> str | None:
        return self.metrics[0] if self.metrics else None

    def _headline_key(self, results: dict[str, float]) -> str:
        return next(iter(results))

    def _better(self, key: str, new: float, old: float) -> bool:
        return new > old if higher_is_better(key, self.higher_is_better) else new < old

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()
        self._evaluating = 0.0

    def train_seconds(self) -> float:
        """Wall seconds of training so far, evaluations excluded."""
        if self._started is None:
            return self._seconds_before
        return self._seconds_before + time.monotonic() - self._started - self._evaluating

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.cadence.due(pl_module.kimg, trainer.should_stop):
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.metrics:
            self.final = self.evaluate(trainer, pl_module)
            self.final_kimg = pl_module.kimg
            if trainer.is_global_zero:
                self.write_summary()

    def summary(self) -> dict[str, Any]:
        """Final results (with kimg) and the best headline value (with kimg and checkpoint)."""
        best = dict(self.best) if self.best else None
        if best is not None and self.save_best:
            best["checkpoint"] = str(self.run_dir / "checkpoints" / BEST_CHECKPOINT)
        final = None if self.final is None else {**self.final, "kimg": self.final_kimg}
        return {"final": final, "best": best}

    def write_summary(self) -> Path:
        """Print final and best on one line each and write them to ``metrics_summary.json``."""
        summary = self.summary()
        if summary["final"] is not None:
            values = ", ".join(f"{k}={v:.4g}" for k, v in summary["final"].items() if k != "kimg")
            print(f"[dgan] final (kimg {self.final_kimg:.1f}): {values}", flush=True)
        if summary["best"] is not None:
            key = next(iter(summary["best"]))
            print(f"[dgan] best {key}={summary['best'][key]:.4g} at kimg "
                  f"{summary['best']['kimg']:.1f}", flush=True)
        path = self.run_dir / SUMMARY_FILE
        atomic_write_bytes(path, (json.dumps(summary, indent=2) + "\n").encode())
        return path

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Compute every metric on every rank; rank 0 logs and writes."""
        seconds = self.train_seconds()
        began = time.monotonic()
        try:
            return self._evaluate(trainer, pl_module, seconds)
        finally:
            self._evaluating += time.monotonic() - began

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule,
                  seconds: float) -> dict[str, float]:
        dataset = (self.reference_dataset if self.reference_dataset is not None
                   else trainer.datamodule.dataset)
        opts = MetricOptions(
            G=pl_module.G_ema, dataset=dataset, device=pl_module.device,
            batch_size=self.batch_size, rank=trainer.global_rank,
            world_size=trainer.world_size, cache_dir=self.cache_dir,
            weights_dir=self.weights_dir, seed=self.seed,
        )
        results: dict[str, float] = {}
        with torch.no_grad():
            for name in self.metrics:
                results.update(compute_metric(name, opts))
        kimg = pl_module.kimg
        if results:
            key = self._headline_key(results)
            value = results[key]
            if math.isfinite(value) and (
                self.best is None or self._better(key, value, self.best[key])
            ):
                self.best = {key: value, "kimg": kimg}
                if self.save_best:
                    from dgan.callbacks.checkpoint import save_checkpoint_atomic

                    best_path = self.run_dir / "checkpoints" / BEST_CHECKPOINT
                    save_checkpoint_atomic(trainer, best_path)
                    if trainer.is_global_zero:
                        # W&B (log_model=true) moves its "best" alias to this version.
                        log_checkpoint(trainer, best_path, kimg, aliases=["best"])
        if trainer.is_global_zero:
            if results and not self._headline_declared:
                # The run's summary shows the best headline value, not the last one.
                key = self._headline_key(results)
                declare_headline(trainer, f"metrics/{key}",
                                 higher_is_better(key, self.higher_is_better))
                self._headline_declared = True
            append_metrics(self.run_dir, kimg, results, train_seconds=seconds)
            logged = {f"metrics/{k}": float(v) for k, v in results.items()}
            if self.best:
                logged.update({f"metrics/best_{k}": float(v) for k, v in self.best.items()})
            log_scalars(trainer, logged, kimg)
            summary = ", ".join(f"{k}={v:.4g}" for k, v in results.items())
            print(f"[dgan] kimg {kimg:.1f}: {summary}", flush=True)
        return results

    def state_dict(self) -> dict[str, Any]:
        return {**self.cadence.state_dict(), "best": self.best,
                "train_seconds": self.train_seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.cadence.load_state_dict(state_dict)
        self.best = state_dict["best"]
        self._seconds_before = float(state_dict.get("train_seconds", 0.0))
