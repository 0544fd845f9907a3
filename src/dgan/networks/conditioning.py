"""How a discriminator sees the diffusion timestep t (and the class label).

The reference Diffusion-GAN feeds the raw integer t, concatenated with the class label, through
a mapping network into a projection head; the convolutional trunk never sees t. This module is
that head as a reusable piece, with alternatives for the encoding of t:

- ``raw``: t as a float, exactly the reference (large inputs, tamed by the mapping's
  normalisation);
- ``normalized``: t / t_max in [0, 1];
- ``sinusoidal``: transformer-style sin/cos features of t;
- ``separate``: the class label through its own embedding and sin/cos features of t through
  the mapping network, each normalised, joined as two halves of the projection vector. In the
  three modes above the label and t share one embedding, so a large t outweighs the label (in
  ``raw`` the vectors of two classes are nearly parallel at every t > 0); here the label's half
  is the same at every t, and D's logit is a label term plus a t term;
- ``none``: D ignores t (plug-in mode, or a plain GAN); the class label is still used.

A backbone ends in ``head.in_features`` features; ``head(features, c, t)`` returns one logit
per sample.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgan.networks.layers import EqualLinear, MappingMLP, normalize_2nd_moment

CONDITIONING_MODES = ("raw", "normalized", "sinusoidal", "separate", "none")
# Timesteps compared by :func:`conditioning_cosines` (besides t = 0 and t_max).
PROBE_TIMESTEPS = (10, 100, 500)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sin/cos features of integer timesteps ``t`` ([N] or [N, 1]) -> [N, dim]."""
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    angles = t.reshape(-1, 1).float() * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimestepConditioning(nn.Module):
    """Projection head of a t-dependent (and optionally class-conditional) discriminator.

    Args:
        mode: encoding of t: ``raw`` | ``normalized`` | ``sinusoidal`` | ``separate`` | ``none``.
        c_dim: class-label width (0: unconditional).
        cmap_dim: width of the projection; the backbone must output this many features when
            the head is conditional (t used or c_dim > 0), and 1 otherwise.
        t_max: largest timestep, the scale of ``normalized`` mode.
        num_layers: layers of the mapping network (8 in the reference).
        lr_multiplier: learning-rate multiplier of the mapping network (0.01 in the reference).
        sinusoidal_dim: width of the sin/cos features in ``sinusoidal`` and ``separate`` mode.
        embed_bias_init: initial bias of the embedding of (c, t); None: 0 for ``raw`` (the
            reference) and ``separate``, 1 otherwise. With zero bias, the embedding of a scalar
            t is ``t * w``, which the mapping's 2nd-moment normalisation reduces to
            ``sign(t)``: D sees t's magnitude only once the bias has learned to move. In
            ``separate`` mode it is the bias of both embeddings (label and t).

    In ``separate`` mode with labels, the first ``cmap_dim // 2`` entries of the projection
    vector come from the label and the others from t.
    """

    def __init__(
        self,
        mode: str = "raw",
        c_dim: int = 0,
        cmap_dim: int = 512,
        t_max: int = 1000,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        sinusoidal_dim: int = 128,
        embed_bias_init: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in CONDITIONING_MODES:
            raise ValueError(
                f"t conditioning mode={mode!r} is not valid; choose one of {CONDITIONING_MODES}"
            )
        if t_max <= 0:
            raise ValueError(f"t_max={t_max} must be positive")
        self.mode = mode
        self.c_dim = c_dim
        self.t_max = t_max
        self.sinusoidal_dim = sinusoidal_dim
        t_dim = {"raw": 1, "normalized": 1, "sinusoidal": sinusoidal_dim,
                 "separate": sinusoidal_dim, "none": 0}[mode]
        self.t_dim = t_dim
        self.cmap_dim = cmap_dim if (c_dim + t_dim) > 0 else 0
        if embed_bias_init is None:
            embed_bias_init = 0.0 if mode in ("raw", "separate") else 1.0
        self.c_embed: EqualLinear | None = None
        if mode == "separate":
            # Two halves, each normalised apart, then concatenated: the label's half is the same
            # at every t, so the cosine between two classes cannot grow with t (it is
            # (1 + cosine of the label halves) / 2 at every t). The label half is an embedding
            # alone: of a one-hot label, any mapping is a table of vectors, which is what an
            # embedding is, and deep leaky-ReLU layers would only pull the classes together.
            if c_dim and cmap_dim < 2:
                raise ValueError(f"t_conditioning='separate' with labels needs cmap_dim >= 2 "
                                 f"(a half for the label, a half for t), got {cmap_dim}")
            c_width = cmap_dim // 2 if c_dim else 0
            if c_dim:
                self.c_embed = EqualLinear(c_dim, c_width, bias_init=embed_bias_init)
            self.mapping = MappingMLP(z_dim=0, c_dim=t_dim, out_dim=cmap_dim - c_width,
                                      num_layers=num_layers, lr_multiplier=lr_multiplier,
                                      embed_bias_init=embed_bias_init)
        else:
            self.mapping = (
                MappingMLP(
                    z_dim=0,
                    c_dim=c_dim + t_dim,
                    out_dim=cmap_dim,
                    num_layers=num_layers,
                    lr_multiplier=lr_multiplier,
                    embed_bias_init=embed_bias_init,
                )
                if self.cmap_dim
                else None
            )

    @property
    def in_features(self) -> int:
        """Number of features the backbone must produce."""
        return self.cmap_dim if self.cmap_dim else 1

    def encode_t(self, t: torch.Tensor) -> torch.Tensor:
        """Features of the timesteps ``t`` ([N] or [N, 1]) for the chosen mode -> [N, t_dim]."""
        t = t.reshape(-1, 1)
        if self.mode == "raw":
            return t.float()
        if self.mode == "normalized":
            return t.float() / self.t_max
        if self.mode in ("sinusoidal", "separate"):
            return sinusoidal_embedding(t, self.sinusoidal_dim)
        return t.new_zeros(t.shape[0], 0, dtype=torch.float32)

    def forward(
        self, features: torch.Tensor, c: torch.Tensor | None, t: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits [N, 1] from backbone ``features`` [N, in_features], labels and timesteps."""
        if not self.cmap_dim:
            return features
        cmap = self.conditioning(c, t, features.shape[0], features.device)
        return (features.float() * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)

    def conditioning(self, c: torch.Tensor | None, t: torch.Tensor | None, n: int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """The conditioning vectors [n, cmap_dim] of labels ``c`` and timesteps ``t`` (None:
        t = 0, clean): what the backbone's features are projected on."""
        if not self.cmap_dim:
            raise ValueError("an unconditional head without t has no conditioning vector")
        if self.t_dim and t is None:
            t = torch.zeros(n, dtype=torch.long, device=device)
        labels = c.reshape(n, -1).float() if self.c_dim else None
        if self.mode == "separate":
            halves = [normalize_2nd_moment(self.mapping(None, self.encode_t(t)))]
            if self.c_embed is not None:
                halves.insert(0, normalize_2nd_moment(self.c_embed(labels)))
            return torch.cat(halves, dim=1)
        parts = [labels] if labels is not None else []
        if self.t_dim:
            parts.append(self.encode_t(t))
        return self.mapping(None, torch.cat(parts, dim=1))


class OutputLayer(EqualLinear):
    """Final linear layer of a backbone, sized for a :class:`TimestepConditioning` head."""

    def __init__(self, in_features: int, head: TimestepConditioning) -> None:
        super().__init__(in_features, head.in_features)


def _mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine over the distinct pairs of rows of ``vectors`` [K, D] (K >= 2)."""
    unit = torch.nn.functional.normalize(vectors.double(), dim=1)
    sims = unit @ unit.T
    k = len(vectors)
    return float((sims.sum() - sims.diagonal().sum()) / (k * (k - 1)))


@torch.no_grad()
def conditioning_cosines(head: TimestepConditioning) -> list[tuple[str, int, int, float]]:
    """How far apart the head keeps classes and timesteps: rows ``(kind, t_a, t_b, cosine)``.

    ``class`` rows (conditional heads): the mean cosine between the conditioning vectors of
    every pair of classes at one t (``t_a == t_b``: 0, 10, 100 and t_max); near 1 means D
    cannot tell the classes apart at that t. ``t`` rows (heads that see t): the cosine between
    the vectors of two timesteps (10, 100, 500), averaged over the classes; 1 means D cannot
    tell those t apart. An unconditional head without t has no rows.

    Args:
        head: the discriminator's head (``D.head``).
    """
    if not head.cmap_dim:
        return []
    device = next(head.parameters()).device
    labels = (torch.eye(head.c_dim, device=device) if head.c_dim
              else torch.zeros(1, 0, device=device))
    k = len(labels)

    def vectors(t: int) -> torch.Tensor:
        steps = torch.full((k,), t, dtype=torch.long, device=device)
        return head.conditioning(labels, steps, k, device).float()

    rows: list[tuple[str, int, int, float]] = []
    if head.c_dim >= 2:
        for t in dict.fromkeys((0, *PROBE_TIMESTEPS[:2], head.t_max)):
            rows.append(("class", t, t, _mean_pairwise_cosine(vectors(t))))
    if head.t_dim:
        probes = {t: vectors(t) for t in PROBE_TIMESTEPS}
        for i, a in enumerate(PROBE_TIMESTEPS):
            for b in PROBE_TIMESTEPS[i + 1:]:
                cos = torch.nn.functional.cosine_similarity(probes[a].double(),
                                                            probes[b].double(), dim=1)
                rows.append(("t", a, b, float(cos.mean())))
    return rows
