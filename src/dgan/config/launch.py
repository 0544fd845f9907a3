"""How a run is launched: local multiruns, SLURM allocations, sweepers that need a metric.

Checked at start, before any object is built, so that a launch that cannot work stops with one
line instead of hanging (DDP inside a local multirun) or training with the wrong world size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from dgan.core.errors import ConfigError

# Launchers that start every job in its own allocation, where Lightning's DDP can start its
# processes (or the scheduler starts them); the basic and other local launchers cannot.
CLUSTER_LAUNCHERS = ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",)
# SLURM job names Lightning treats as an interactive shell rather than a batch job; it then
# ignores the SLURM variables, and so do we.
SLURM_INTERACTIVE_JOB_NAMES = ("bash", "interactive")
# SLURM_TASKS_PER_NODE lists counts like "4(x2),3": count and repetition.
_TASKS_PER_NODE_ITEM = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def device_count(devices: Any, accelerator: Any = "auto") -> int:
    """Processes per node a Lightning ``devices`` value starts (1 per device).

    Args:
        devices: ``trainer.devices``: an int, -1 or "auto" (all devices), "N", "0,1" or a list.
        accelerator: ``trainer.accelerator``; "cpu" makes "auto" one process.
    """
    if isinstance(devices, str):
        text = devices.strip()
        if text == "auto":
            return 1 if str(accelerator) == "cpu" else _visible_gpus()
        if "," in text:
            return len([part for part in text.split(",") if part.strip()])
        devices = int(text)
    if isinstance(devices, int):
        if devices == -1:
            return (os.cpu_count() or 1) if str(accelerator) == "cpu" else _visible_gpus()
        return devices
    return len(list(devices))


def _visible_gpus() -> int:
    import torch

    return max(torch.cuda.device_count(), 1)


def world_size(trainer: Mapping[str, Any]) -> int:
    """Processes of a run: devices per node x nodes."""
    return device_count(trainer.get("devices", 1), trainer.get("accelerator", "auto")) * int(
        trainer.get("num_nodes", 1)
    )


def check_local_multirun(trainer: Mapping[str, Any], mode: Any, launcher_target: str) -> None:
    """Refuse a multi-process trainer in a multirun whose launcher runs jobs here.

    Lightning starts DDP ranks by re-running the command line, so each rank would start the
    whole sweep again (or wait forever for ranks that never come).

    Args:
        trainer: the ``trainer`` config.
        mode: Hydra's run mode (RUN or MULTIRUN, enum or string).
        launcher_target: ``hydra.launcher._target_``.
    """
    if not str(mode).endswith("MULTIRUN") or launcher_target in CLUSTER_LAUNCHERS:
        return
    size = world_size(trainer)
    if size > 1:
        raise ConfigError(
            f"trainer.devices={trainer.get('devices')} x trainer.num_nodes="
            f"{trainer.get('num_nodes', 1)} = {size} processes per job cannot run in a local "
            f"multirun ({launcher_target.rsplit('.', 1)[-1]}); sweep through a cluster "
            f"launcher with hydra/launcher=slurm, or use one device per job (trainer=cpu|gpu)"
        )


def _tasks_per_node(env: Mapping[str, str]) -> int | None:
    """Tasks on each node, when the allocation is homogeneous (None when it is not given)."""
    text = env.get("SLURM_NTASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    if not text:
        return None
    counts = set()
    for item in text.split(","):
        match = _TASKS_PER_NODE_ITEM.match(item.strip())
        if match is None:
            return None
        counts.add(int(match.group(1)))
    return counts.pop() if len(counts) == 1 else None


def check_slurm_world_size(trainer: Mapping[str, Any], env: Mapping[str, str] | None = None
                           ) -> None:
    """Compare devices x num_nodes with the tasks SLURM started; a mismatch is a ConfigError.

    Nothing is checked outside a SLURM job, or in an interactive one (job name bash or
    interactive), where Lightning also ignores the scheduler.

    Args:
        trainer: the ``trainer`` config (devices, num_nodes, accelerator).
        env: the environment to read (None: ``os.environ``).
    """
    env = os.environ if env is None else env
    if env.get("SLURM_JOB_NAME") in SLURM_INTERACTIVE_JOB_NAMES:
        return
    nodes = int(env["SLURM_NNODES"]) if env.get("SLURM_NNODES") else None
    per_node = _tasks_per_node(env)
    if env.get("SLURM_NTASKS"):
        tasks = int(env["SLURM_NTASKS"])
    elif nodes is not None and per_node is not None:
        tasks = nodes * per_node
    else:
        return  # not a SLURM job (or one that does not say how many tasks it runs)
    devices = device_count(trainer.get("devices", 1), trainer.get("accelerator", "auto"))
    num_nodes = int(trainer.get("num_nodes", 1))
    mismatch = (
        devices * num_nodes != tasks
        or (nodes is not None and nodes != num_nodes)
        or (per_node is not None and per_node != devices)
    )
    if mismatch:
        scheduler = ", ".join(
            f"{key}={env[key]}" for key in
            ("SLURM_NTASKS", "SLURM_NNODES", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
            if env.get(key)
        )
        raise ConfigError(
            f"world size mismatch: trainer.devices={trainer.get('devices')} x "
            f"trainer.num_nodes={num_nodes} = {devices * num_nodes} processes, but SLURM runs "
            f"{tasks} task(s) ({scheduler}); submit with hydra/launcher=slurm (tasks_per_node = "
            f"trainer.devices, nodes = trainer.num_nodes) or set trainer.devices/num_nodes to "
            f"the allocation"
        )


def check_ddp_strategy(trainer: Mapping[str, Any]) -> None:
    """More than one process needs dgan's own DDP strategy (trainer=ddp or ddp_cpu).

    Lightning's default for several devices wraps G and D in one DistributedDataParallel,
    which stops on the parameters a phase leaves unused, on every rank.

    Args:
        trainer: the ``trainer`` config.
    """
    try:
        size = world_size(trainer)
    except (TypeError, ValueError):
        return  # a devices value the rules check refuses, with what is valid
    strategy = trainer.get("strategy")
    if size <= 1 or (isinstance(strategy, Mapping) and "_target_" in strategy):
        return
    devices = trainer.get("devices")
    given = "" if strategy is None else f" (trainer.strategy={strategy} wraps G and D in one DDP)"
    raise ConfigError(
        f"trainer.devices={devices}: {size} processes need dgan's DDP strategy{given}; use "
        f"trainer=ddp_cpu trainer.devices={devices} on CPUs or trainer=ddp on GPUs")


def check_sweeper_has_metric(cfg: DictConfig, sweeper_target: str) -> None:
    """An optimising sweeper (Optuna) needs the headline metric the run returns."""
    if "optuna" in sweeper_target.lower() and not (cfg.get("metrics") and cfg.metrics.metrics):
        raise ConfigError(
            "metrics.metrics is empty, but the Optuna sweeper optimises the run's headline "
            "metric; choose metrics=toy|digits|digits_cond|fid50k|paper (the first is the headline)"
        )


def check_launch(cfg: DictConfig) -> None:
    """Every launch check for ``cfg``, with Hydra's runtime config when there is one."""
    from hydra.core.hydra_config import HydraConfig

    trainer = cfg.get("trainer") or {}
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        launcher = str(hydra_cfg.launcher.get("_target_", ""))
        sweeper = str(hydra_cfg.sweeper.get("_target_", ""))
        check_local_multirun(trainer, hydra_cfg.mode, launcher)
        if str(hydra_cfg.mode).endswith("MULTIRUN"):
            check_sweeper_has_metric(cfg, sweeper)
    check_ddp_strategy(trainer)
    check_slurm_world_size(trainer)
