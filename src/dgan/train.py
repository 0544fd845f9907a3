"""Train a (Diffusion-)GAN: ``python -m dgan.train experiment=gaussians25 [key=value ...]``.

Thin entry point: Hydra composes ``conf/train.yaml``; :func:`train` builds the objects the config
names and fits them. Returns the headline metric, for sweepers that optimise it.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from dgan.callbacks.preemption import Preempted
from dgan.config.builder import ConfigError, build_run
from dgan.config.launch import check_launch
from dgan.config.paths import CONFIG_DIR
from dgan.tracking.loggers import finish_wandb


def train(cfg: DictConfig) -> float | None:
    """Build everything ``cfg`` describes, fit, and return the headline metric (or None)."""
    check_launch(cfg)
    run = build_run(cfg)
    print(f"[dgan] run directory: {run.run_dir}", flush=True)
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
    except BaseException:
        finish_wandb(run.trainer.loggers, exit_code=1)
        raise
    finish_wandb(run.trainer.loggers)  # each job of a multirun is its own W&B run
    print(f"[dgan] finished at kimg {run.module.kimg:.1f}; run directory: {run.run_dir}",
          flush=True)
    return run.headline_value()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        return train(cfg)
    except ConfigError as err:
        # One line that names the key, the value and what is valid; no traceback.
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Preempted as stop:
        # SIGTERM/SIGUSR1: the checkpoint is written; a clean exit so that the scheduler (or a
        # retry loop with resume=auto) can start the run again.
        sys.exit(stop.exit_code)


if __name__ == "__main__":
    main()
