"""InsGen's discriminator: StyleGAN2's D with contrastive heads for instance discrimination."""

from dgan.networks.insgen.discriminator import (
    FAKE_HEAD,
    HEADS,
    REAL_HEAD,
    ContrastiveHead,
    InstanceDiscriminator,
)

__all__ = ["FAKE_HEAD", "HEADS", "REAL_HEAD", "ContrastiveHead", "InstanceDiscriminator"]
