"""Shared fixtures: composing the real configs through Hydra's compose API."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Nothing in the suite may download: the published networks resolve from a cache the tests fill.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# A toy run at reduced width without metrics or picture/progress callbacks (the runs of the
# resume, DDP and stop tests).
QUIET_TOY = [
    "experiment=gaussians25",
    "model.generator.hidden=32",
    "model.discriminator.hidden=32",
    "model.batch_size=64",
    "metrics=none",
    "callbacks.samples=null",
    "callbacks.diagnostics=null",
    "callbacks.progress=null",
]

def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose conf/train.yaml as `python -m dgan.train` would, with a run dir of our own."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.cache_dir = str(output_dir / "cache")
    HydraConfig.instance().set_config(cfg)
    return cfg


def fit_in_process(overrides: list[str], run_dir: Path, probe: L.Callback | None = None):
    """Compose, build and fit a run in this process (resuming when the overrides say so);
    ``probe`` is appended to the trainer's callbacks. Returns the built run."""
    from dgan.assembly.builder import build_run

    run = build_run(compose_train(overrides, run_dir))
    if probe is not None:
        run.trainer.callbacks.append(probe)
    run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
    return run


@pytest.fixture
def compose_cfg(tmp_path: Path):
    def _compose(*overrides: str) -> DictConfig:
        return compose_train(list(overrides), tmp_path / "run")

    return _compose
