"""What identifies a run for its trackers: the resolved config, the command-line overrides, the
output directory and the code's git revision."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

GIT_TIMEOUT_S = 5  # a hung git (network file system, lock) must not stall the start of a run
PACKAGE_DIR = Path(__file__).resolve().parent


def git_revision(directory: str | Path = PACKAGE_DIR) -> str | None:
    """The commit checked out at ``directory`` (``git rev-parse HEAD``), None without git.

    Args:
        directory: a directory inside the repository (default: dgan's own source).
    """
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                             text=True, timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    revision = out.stdout.strip()
    return revision if out.returncode == 0 and revision else None


def command_line_overrides(cfg: DictConfig | None = None) -> list[str]:
    """The overrides the job was started with (``hydra.overrides.task``); [] outside Hydra.

    Args:
        cfg: a config composed with ``return_hydra_config=True``; its ``hydra`` node is read
            when Hydra's global state is not set (compose API).
    """
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return [str(o) for o in HydraConfig.get().overrides.task]
    if cfg is not None and "hydra" in cfg:
        return [str(o) for o in cfg.hydra.overrides.task]
    return []


def run_info(cfg: DictConfig, config: dict[str, Any]) -> dict[str, Any]:
    """Everything a tracker should record about a run, as plain values.

    Args:
        cfg: the composed run config (for the overrides and the output dir).
        config: the resolved config as a plain dict (``dgan.assembly.builder.plain_config``).
    """
    return {
        **config,
        "overrides": command_line_overrides(cfg),
        "output_dir": str(cfg.paths.output_dir),
        "git_revision": git_revision(),
    }
