"""OmegaConf resolvers used by dgan's configs (registered on ``import dgan``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def auto_preset(key: str, resolution: int, devices: int | str, num_nodes: int = 1) -> object:
    """One value of StyleGAN2-ADA's ``auto`` preset for ``resolution`` and the GPU count."""
    from dgan.networks.stylegan2.presets import preset

    gpus = (devices if isinstance(devices, int) else 1) * int(num_nodes)
    return preset("auto", int(resolution), max(gpus, 1))[key]


def sweep_group(mode: object, sweep_dir: str) -> str | None:
    """W&B group of a job: an id of its multirun (``RUN_NAME-DATE_TIME``), None for a single run.

    Args:
        mode: Hydra's run mode (``${hydra:mode}``; RUN or MULTIRUN, as enum or string).
        sweep_dir: the multirun directory (``${hydra:sweep.dir}``).
    """
    if mode is None or not str(mode).endswith("MULTIRUN"):
        return None
    path = Path(str(sweep_dir))
    # The last two parts of the default sweep dir are the run name and the launch time.
    return "-".join(part for part in (path.parent.name, path.name) if part)


def slurm_gpus_per_node(accelerator: str, devices: object) -> object:
    """GPUs to request per node: the trainer's devices on GPU accelerators, none on CPU.

    Args:
        accelerator: ``trainer.accelerator`` (cpu | gpu | cuda | auto).
        devices: ``trainer.devices`` (one process, and one GPU, per device).
    """
    return None if str(accelerator) == "cpu" else devices


def metric_direction(metrics: object, higher_is_better: bool | None = None) -> str:
    """Optuna direction (maximize | minimize) of the headline metric, see dgan.metrics.direction.

    Args:
        metrics: ``metrics.metrics`` (the first name is the headline).
        higher_is_better: ``metrics.higher_is_better`` (None: guessed from the name).
    """
    from dgan.metrics.direction import optimisation_direction

    return optimisation_direction(list(metrics or []), higher_is_better)


def experiment_name(*, _root_: Any) -> object:
    """The chosen experiment (``experiment=NAME``), readable at any time.

    Hydra builds sweepers and launchers before its ``${hydra:...}`` resolver works, and removes
    the ``hydra`` node from the job's config; so read the node while it is there, else ask
    Hydra's runtime config.
    """
    if OmegaConf.select(_root_, "hydra.runtime.choices") is not None:
        return OmegaConf.select(_root_, "hydra.runtime.choices.experiment")
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("experiment")


def ada_kimg(default: float, *, _root_: Any) -> float:
    """The adaptive rate of a run: ``ada_share * kimg``, or ``default`` when ada_share is null.

    The reference moves p by at most batch * interval / (ada_kimg * 1000) per update, with
    ada_kimg 100 for runs of 25,000+ kimg. A CPU-sized run of a few dozen kimg would hardly move
    p at that rate, so its experiments set the top-level ``ada_share`` (0.1: p can cross [0, 1]
    in a tenth of the run, whatever ``kimg=``); the configs of the diffusion and of ADA read it
    here (``ada_kimg: ${dgan.ada_kimg:100}``).

    Args:
        default: the paper's ada_kimg, used when ``ada_share`` is null.
    """
    share = OmegaConf.select(_root_, "ada_share", default=None)
    if share is None:
        return float(default)
    return float(share) * float(OmegaConf.select(_root_, "kimg"))


DEFAULT_POINTS_PER_RUN = 10


def per_run(longest: float, points: int | None = None, *, _root_: Any) -> float:
    """A period of the periodic callbacks that follows the run's length: ``kimg / points``, but
    never longer than ``longest``.

    A fixed period suits only runs of one length: 50 kimg gives a 25,000 kimg run 500 pictures
    and an 8 kimg run none before its end. So the defaults ask for a number of points per run
    (the top-level ``points_per_run``, 10), and keep the former fixed period as the longest
    gap, so that long runs are sampled as often as they were. A number given to the key itself
    (``metrics.every_kimg=8``) replaces all this.

    Args:
        longest: the longest period in kimg (``${dgan.per_run:50}``).
        points: points per run for this key (``${dgan.per_run:320,5}``); None: the top-level
            ``points_per_run``.
    """
    if points is None:
        points = OmegaConf.select(_root_, "points_per_run", default=None)
    points = DEFAULT_POINTS_PER_RUN if points is None else int(points)
    kimg = float(OmegaConf.select(_root_, "kimg"))
    if points < 1:
        raise ValueError(f"points_per_run={points} must be >= 1")
    return min(float(longest), kimg / points)


def data_run_name(prefix: str, path: object) -> str:
    """A run name after the data: ``PREFIX-STEM`` for ``dataset.path`` (``data/mine64.zip``
    gives ``images-mine64``), or ``PREFIX`` while no path is given.

    Args:
        prefix: the experiment's name (``images``).
        path: ``dataset.path``, a zip or a folder.
    """
    if path is None or not str(path).strip():
        return str(prefix)
    where = Path(str(path).rstrip("/\\"))
    stem = where.stem if where.suffix.lower() == ".zip" else where.name
    return f"{prefix}-{stem}" if stem else str(prefix)


def register() -> None:
    for name, fn in (("dgan.auto_preset", auto_preset), ("dgan.sweep_group", sweep_group),
                     ("dgan.experiment_name", experiment_name), ("dgan.ada_kimg", ada_kimg),
                     ("dgan.per_run", per_run), ("dgan.data_run_name", data_run_name),
                     ("dgan.slurm_gpus_per_node", slurm_gpus_per_node),
                     ("dgan.metrics.direction", metric_direction)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
