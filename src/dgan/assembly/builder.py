"""From a composed config to the objects of a run: dataset, networks, diffusion, module,
callbacks, loggers and trainer.

Each config group maps to one object through ``_target_``. Everything is validated here, before
any training: a bad value or an unknown key stops the run with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dgan.assembly.checks import (
    check_cache_dirs,
    check_data_matches_model,
    check_metrics_domain,
    check_metrics_generator,
    check_run_config,
)
from dgan.assembly.init_weights import init_from_pretrained
from dgan.assembly.resume import (
    check_resume,
    continue_history,
    drop_end_of_training_records,
    final_evaluation_missing,
    resolve_resume,
)
from dgan.callbacks.finish_only import FinishOnly
from dgan.callbacks.metrics import MetricsCallback
from dgan.config.batch_layout import batch_layout
from dgan.config.data_sizing import size_from_data
from dgan.config.instantiation import build
from dgan.config.timestep_input import discriminator_t_settings
from dgan.core.errors import ConfigError
from dgan.files.writable import check_writable_dir
from dgan.tracking.run_info import run_info


@dataclasses.dataclass
class Run:
    """The objects of one training run."""

    cfg: DictConfig
    run_dir: Path
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: L.LightningDataModule
    metrics: MetricsCallback | None
    ckpt_path: str | None
    # The checkpoint is at the run's last kimg but its final evaluation was not recorded: fit
    # runs no training step, only the end of training (final metrics, summary).
    finish_only: bool = False

    def headline_value(self) -> float | None:
        """Final value of the first metric (what a sweeper minimises or maximises)."""
        if self.metrics is None or not self.metrics.final:
            return None
        return float(next(iter(self.metrics.final.values())))


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run config as a plain dict (Hydra's own node left out)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key])
        else cfg[key]
        for key in cfg if key != "hydra"
    }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)


def build_run(cfg: DictConfig) -> Run:
    """Validate ``cfg`` and build every object of the run (no training yet)."""
    size_from_data(cfg)  # the model keys left to the data (experiment=images), before any check
    check_run_config(cfg)
    seed_everything(int(cfg.seed))
    run_dir = Path(cfg.paths.output_dir)
    check_writable_dir(run_dir, "hydra.run.dir")
    check_cache_dirs(cfg)
    plain = plain_config(cfg)

    if "path" in cfg.dataset and not cfg.dataset.path:
        raise ConfigError(
            "dataset.path is required: a folder or zip of images; make one with "
            "python -m dgan.data.prepare --source=SRC --dest=DATA.zip, then dataset.path=DATA.zip"
        )
    dataset = build(cfg.dataset, "dataset")
    check_metrics_domain(cfg.get("metrics"), dataset)
    module = build_module(cfg, len(dataset))
    module.run_config = plain  # set after: instantiate would build the _target_s inside it
    check_data_matches_model(dataset, module)
    check_metrics_generator(cfg.get("metrics"), module.G)
    datamodule = build(cfg.datamodule, "datamodule", dataset=dataset)

    callbacks: list[L.Callback] = [
        build(node, f"callbacks.{name}") for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None
    ]
    metrics = None
    if cfg.get("metrics") and cfg.metrics.metrics:
        metrics = build(cfg.metrics, "metrics",
                        reference_dataset=_reference_dataset(cfg, dataset))
        callbacks.append(metrics)
    loggers = [build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()
               if node is not None]
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    try:
        # Recorded in the run config (checkpoints, loggers): what one step means on this run.
        plain["global_batch"] = batch_layout(module.batch_size, module.batch_gpu,
                                             trainer.num_devices, trainer.num_nodes)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    ckpt_path = resolve_resume(cfg.get("resume"), run_dir)
    resume_kimg = None
    if ckpt_path is not None:
        resume_kimg = check_resume(ckpt_path, float(cfg.kimg), module,
                                    unfinished=final_evaluation_missing(run_dir, metrics))
    elif cfg.get("init"):
        # A resumed run continues from its own checkpoint; init only seeds a fresh start.
        init_from_pretrained(str(cfg.init), module)
    continue_history(run_dir, resume_kimg, loggers)
    finish_only = resume_kimg is not None and resume_kimg * 1000 >= float(cfg.kimg) * 1000
    if finish_only:
        drop_end_of_training_records(run_dir, ckpt_path, resume_kimg)
        trainer.callbacks.append(FinishOnly(resume_kimg))
    # Last, once the config is known good: W&B starts its run on the first call.
    info = run_info(cfg, plain)
    for logger in loggers:
        logger.log_hyperparams(info)
    return Run(cfg, run_dir, trainer, module, datamodule, metrics, ckpt_path, finish_only)




def build_module(cfg: DictConfig, dataset_size: int | None) -> L.LightningModule:
    """The DiffusionGAN of ``cfg`` as a training run builds it (``dgan.bench`` times this one):
    its diffusion and the adaptive callback it owns, its augmentation, D's timestep input from
    the diffusion's t_max, and a loss sized by the training set.

    Args:
        cfg: the composed run config.
        dataset_size: images in the training set, x-flips included (InsGen's queues take 5 %
            of it; None leaves the loss's own setting).
    """
    diffusion = build(cfg.diffusion, "diffusion") if cfg.get("diffusion") else None
    adaptive = (build(cfg.adaptive, "adaptive", driven=diffusion, drives="diffusion")
                if diffusion and cfg.get("adaptive") else None)
    augment = build(cfg.augment, "augment") if cfg.get("augment") else None
    # ADA's p: its own heuristic without the diffusion, the diffusion's p (capped) with it.
    augment_p = (build(cfg.augment_p, "augment_p", driven=augment, drives="augment",
                       follow=diffusion)
                 if augment is not None and cfg.get("augment_p") else None)
    return build(cfg.model, "model", diffusion=diffusion, adaptive=adaptive, augment=augment,
                 augment_p=augment_p,
                 total_kimg=float(cfg.kimg), **_discriminator_timesteps(cfg.model, diffusion),
                 **_loss_dataset_size(cfg.model, dataset_size))


def _discriminator_timesteps(model: DictConfig, diffusion: Any) -> dict[str, Any]:
    """The model's D keys that follow the diffusion (:mod:`dgan.config.timestep_input`)."""
    settings = discriminator_t_settings(model.get("discriminator"),
                                        None if diffusion is None else int(diffusion.t_max))
    return {"discriminator": settings} if settings else {}


def _loss_dataset_size(model: DictConfig, dataset_size: int | None) -> dict[str, Any]:
    """A loss that sizes state by the data (InsGen's queues: 5% of the images) gets the
    training set's length, x-flips included, when its config has a ``dataset_size: null``."""
    node = model.get("loss")
    if dataset_size is None or node is None or "dataset_size" not in node \
            or node.dataset_size is not None:
        return {}
    return {"loss": {"dataset_size": int(dataset_size)}}


def _reference_dataset(cfg: DictConfig, dataset: Any) -> Any:
    """The reals of the metrics: the training set, or with ``metrics.reference=full`` the
    dataset its ``max_size`` subset was drawn from (the limited-data protocol)."""
    if cfg.metrics.get("reference", "train") != "full" or cfg.dataset.get("max_size") is None:
        return dataset
    full = OmegaConf.merge(cfg.dataset, {"max_size": None})
    return build(full, "dataset")


