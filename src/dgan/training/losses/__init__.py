"""One loss object per GAN family: what each training phase computes (StyleGAN2-ADA's
``accumulate_gradients``)."""

from dgan.training.losses.base import GANLoss, GANNetworks
from dgan.training.losses.insgen import InsGenLoss
from dgan.training.losses.projected import ProjectedGANLoss
from dgan.training.losses.stylegan2 import StyleGAN2Loss

__all__ = ["GANLoss", "GANNetworks", "InsGenLoss", "ProjectedGANLoss", "StyleGAN2Loss"]
