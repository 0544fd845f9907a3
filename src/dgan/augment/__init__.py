"""Differentiable image augmentation for GAN discriminators (DiffAugment and StyleGAN2-ADA).

Both modules take images in [-1, 1], NCHW, keep shape and dtype, are differentiable in the
images, and draw from a random generator of their own that ``state_dict`` saves.
"""

from dgan.augment.ada import (
    BLIT_OPS,
    COLOR_OPS,
    GEOMETRIC_OPS,
    OPS,
    AdaptiveAugment,
    lowpass_filter,
    preset_multipliers,
    reflect_pad,
    resample,
)
from dgan.augment.diffaugment import POLICIES, DiffAugment, parse_policy
from dgan.augment.grid import augmentation_grid

__all__ = [
    "BLIT_OPS",
    "COLOR_OPS",
    "GEOMETRIC_OPS",
    "OPS",
    "POLICIES",
    "AdaptiveAugment",
    "DiffAugment",
    "augmentation_grid",
    "lowpass_filter",
    "parse_policy",
    "preset_multipliers",
    "reflect_pad",
    "resample",
]
