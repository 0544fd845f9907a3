"""Diffusion-ProjectedGAN networks: frozen EfficientNet-Lite0 features, random projections,
multi-scale mini discriminators, and the FastGAN / FastGAN-lite generators."""

from dgan.networks.projected.discriminator import MiniDiscriminator, ProjectedDiscriminator
from dgan.networks.projected.fastgan import FastGANGenerator
from dgan.networks.projected.feature_network import (
    EfficientNetLite0Features,
    FeatureWeightsUnavailable,
    create_efficientnet_lite0,
    package_weights_path,
)
from dgan.networks.projected.projections import FeatureFusionBlock, RandomProjections

__all__ = [
    "EfficientNetLite0Features",
    "FastGANGenerator",
    "FeatureFusionBlock",
    "FeatureWeightsUnavailable",
    "MiniDiscriminator",
    "ProjectedDiscriminator",
    "RandomProjections",
    "create_efficientnet_lite0",
    "package_weights_path",
]
