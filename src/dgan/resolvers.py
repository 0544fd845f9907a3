"""OmegaConf resolvers used by dgan's configs (registered on ``import dgan``)."""

from __future__ import annotations

from omegaconf import OmegaConf


def auto_preset(key: str, resolution: int, devices: int | str, num_nodes: int = 1) -> object:
    """One value of StyleGAN2-ADA's ``auto`` preset for ``resolution`` and the GPU count."""
    from dgan.networks.stylegan2.presets import preset

    gpus = (devices if isinstance(devices, int) else 1) * int(num_nodes)
    return preset("auto", int(resolution), max(gpus, 1))[key]


def register() -> None:
    if not OmegaConf.has_resolver("dgan.auto_preset"):
        OmegaConf.register_new_resolver("dgan.auto_preset", auto_preset)
