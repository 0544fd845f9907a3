"""StyleGAN2 generator and timestep-dependent discriminator in plain PyTorch (CPU-friendly)."""

from dgan.networks.stylegan2.discriminator import Discriminator
from dgan.networks.stylegan2.generator import Generator
from dgan.networks.stylegan2.presets import PRESETS, preset

__all__ = ["Discriminator", "Generator", "PRESETS", "preset"]
