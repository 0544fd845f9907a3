"""InsGen's discriminator: the timestep-dependent StyleGAN2 D plus two contrastive heads.

Instance discrimination (InsGen, Yang et al. 2021) asks D to tell every image from the others,
which keeps a D trained on a few thousand images from memorising them. It reads D's features
before the epilogue (the 4x4 maps the convolutional blocks produce, averaged over the pixels)
through a small MLP per task:

* the real head embeds real images (real instance discrimination);
* the fake head embeds generated ones (fake instance discrimination, for D and for G).

The heads are submodules of D, so D's optimizer, its gradient all-reduce and the checkpoint
cover them with nothing else to wire. ``forward`` is the wrapped StyleGAN2 D's, unchanged: the
logits do not depend on the heads. The momentum copy that encodes the keys, and the queues of
negatives, belong to the loss (:class:`dgan.training.losses.InsGenLoss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dgan.networks.stylegan2.discriminator import Discriminator

# Width of the embedding the contrastive losses compare (InsGen's MoCo-style heads).
DEFAULT_HEAD_DIM = 128
REAL_HEAD = "real"
FAKE_HEAD = "fake"
HEADS = (REAL_HEAD, FAKE_HEAD)


class ContrastiveHead(nn.Module):
    """MLP features -> features -> ``out_features`` on spatially averaged features.

    Args:
        in_features: channels of D's features.
        out_features: width of the embedding.
    """

    def __init__(self, in_features: int, out_features: int = DEFAULT_HEAD_DIM) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(),
                                 nn.Linear(in_features, out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings [N, out_features] of features [N, C, H, W] or [N, C]."""
        features = features.float()
        if features.dim() > 2:
            features = features.mean(dim=tuple(range(2, features.dim())))
        return F.normalize(self.mlp(features), dim=1)


class InstanceDiscriminator(Discriminator):
    """StyleGAN2's D(img, c, t) with a real and a fake contrastive head on its trunk.

    Args:
        head_dim: width of the heads' embeddings.
        **kwargs: the arguments of :class:`dgan.networks.stylegan2.Discriminator`.
    """

    # State a pretrained D without heads (Diffusion-StyleGAN2's, or an InsGen snapshot written
    # before the reference saved its heads) lacks: ``train init=`` leaves it as built.
    optional_state_prefixes = ("heads.",)

    def __init__(self, head_dim: int = DEFAULT_HEAD_DIM, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if head_dim < 1:
            raise ValueError(f"head_dim={head_dim} must be an integer >= 1")
        self.head_dim = int(head_dim)
        self.heads = nn.ModuleDict(
            {name: ContrastiveHead(self.feature_channels, self.head_dim) for name in HEADS})

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """D's features before the epilogue, averaged over the pixels: [N, feature_channels].

        The trunk never sees t, so these are D's features at t = 0 (InsGen's views are clean).
        """
        x, _ = self.trunk(img)
        return x.float().mean(dim=(2, 3))

    def project(self, features: torch.Tensor, head: str) -> torch.Tensor:
        """Unit-length embeddings of ``features`` by the ``head`` head (real | fake)."""
        if head not in self.heads:
            raise ValueError(f"head={head!r} is not one of {HEADS}")
        return self.heads[head](features)

    def embed(self, img: torch.Tensor, head: str) -> torch.Tensor:
        """Unit-length embeddings [N, head_dim] of images by the ``head`` head."""
        return self.project(self.features(img), head)
