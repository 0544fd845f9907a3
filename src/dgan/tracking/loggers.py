"""Experiment loggers: CSV (default), Weights & Biases, TensorBoard."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

WANDB_MODES = ("online", "offline", "disabled")
# wandb's older names, which wandb.init itself writes back to $WANDB_MODE (so DDP workers and
# later jobs of the same process inherit them).
WANDB_MODE_ALIASES = {"dryrun": "offline", "run": "online"}


def wandb_credentials_present() -> bool:
    """Whether W&B has an API key here (environment or ~/.netrc), without a network call."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str | None) -> str:
    """The W&B mode to use: explicit, else $WANDB_MODE, else online only with credentials."""
    mode = mode or os.environ.get("WANDB_MODE") or (
        "online" if wandb_credentials_present() else "offline"
    )
    mode = WANDB_MODE_ALIASES.get(mode, mode)
    if mode not in WANDB_MODES:
        # The builder prefixes the config key (logger.wandb.).
        raise ValueError(f"mode={mode!r} is not valid; choose one of {WANDB_MODES}")
    if mode == "online" and not wandb_credentials_present():
        # Refused rather than turned offline: asking for online and silently getting a local
        # run would surprise whoever waits for the dashboard; wandb itself would prompt.
        raise ValueError("mode='online' needs a W&B API key, and none is set here "
                         "(WANDB_API_KEY or wandb login); log in, or use "
                         "logger.wandb.mode=offline and wandb sync the run later")
    return mode


def wandb_logger(project: str = "dgan", name: str | None = None, group: str | None = None,
                 save_dir: str | Path = ".", mode: str | None = None,
                 log_model: bool = False, tags: list[str] | None = None, **kwargs: Any) -> Any:
    """A Lightning ``WandbLogger`` that works without a network when there is no account.

    Args:
        project: W&B project.
        name: run name.
        group: run group (a multirun's jobs share one).
        save_dir: directory of the local W&B files (the run directory).
        mode: online | offline | disabled (None: offline unless credentials exist).
        log_model: log each checkpoint dgan saves as a model artifact (offline too: uploaded by
            ``wandb sync``).
        tags: run tags.
    """
    from dgan.tracking.records import KimgWandbLogger

    mode = resolve_wandb_mode(mode)
    os.environ["WANDB_MODE"] = mode
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return KimgWandbLogger(project=project, name=name, group=group, save_dir=str(save_dir),
                           offline=mode == "offline", mode=mode, log_checkpoints=log_model,
                           tags=list(tags or []), **kwargs)


def finish_wandb(loggers: list[Any], exit_code: int = 0) -> None:
    """End the W&B run of a job, so that the next job of a multirun starts its own run.

    Lightning leaves the run open at the end of ``fit``; in one process running many jobs the
    next job would then log into it. Ranks without a run (all but rank 0) do nothing.

    Args:
        loggers: the trainer's loggers.
        exit_code: recorded by W&B (non-zero marks the run failed).
    """
    from lightning.pytorch.loggers import WandbLogger

    if not any(isinstance(logger, WandbLogger) for logger in loggers):
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)
