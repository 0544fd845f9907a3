"""dgan: Diffusion-GAN experiments on PyTorch Lightning and Hydra."""

from dgan.assembly.resolvers import register as _register_resolvers

_register_resolvers()

__version__ = "0.1.0"
