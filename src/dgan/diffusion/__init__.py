"""The forward diffusion of Diffusion-GAN: the process, its beta schedules and the adaptive
update of the chain length T."""

from dgan.diffusion.feature_noise import FeatureDiffusion
from dgan.diffusion.process import Diffusion

__all__ = ["Diffusion", "FeatureDiffusion"]
