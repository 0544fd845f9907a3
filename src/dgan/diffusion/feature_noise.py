"""The forward diffusion of Diffusion-ProjectedGAN: noise on D's feature maps, not on pixels.

Diffusion-ProjectedGAN diffuses each of the four feature maps of the frozen EfficientNet (or
of the random projections, ``diffusion_position="last"``) with a timestep drawn per sample
*and per channel*, so that one image reaches the mini discriminators with some channels clean
and others noisy. The process is the one of :class:`~dgan.diffusion.process.Diffusion` (same
schedule maths, same ``q_sample``, same adaptive p and T, same state in the checkpoint); only
two things differ, and they are all this module adds:

- the pool: of its ``pool_size`` slots, min(round(pool_size * p), max_noisy_slots) hold a t drawn
  from pi(t) and the rest t = 0, so the share of noisy draws grows with p and at p = 0 nothing
  is noised (the pixel diffusion keeps a fixed clean fraction instead);
- the call: ``diffusion(features)`` maps the list of feature maps to the list of noisy maps,
  which is the ``feature_noise`` callable :class:`~dgan.networks.projected.ProjectedDiscriminator`
  takes. D is not told t.

It is the module's ``diffusion``, so
:class:`~dgan.callbacks.adaptive_probability.AdaptiveProbability` drives its p from the real
logits' signs exactly as it drives the pixel diffusion's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dgan.diffusion.process import Diffusion

# The reference's pool: 64 slots of which at most 48 are noisy (3/4), the rest always clean.
DEFAULT_POOL_SIZE = 64
DEFAULT_MAX_NOISY_SLOTS = 48
# Maps [N, C, H, W]: t is drawn for each of the first two dimensions.
FEATURE_MAP_DIMS = 4


class FeatureDiffusion(Diffusion):
    """Adaptive forward diffusion of feature maps, t per sample and channel, D not t-aware.

    Args:
        beta_schedule: one of linear | quad | const | jsd | sigmoid | cosine | continuous_t.
        beta_start: first beta of the linear, quad and sigmoid schedules.
        beta_end: last beta of the linear, quad and sigmoid schedules; the const value.
        t_min: chain length T at p = 0.
        t_max: chain length T at p = 1.
        noise_std: sigma, the scale of the noise relative to the features.
        noise_type: gaussian | bernoulli (+-sigma).
        ts_dist: t distribution on {1..T} of the noisy slots: priority (weight t - 1) | uniform.
        pool_size: number of slots of the t pool.
        max_noisy_slots: most slots that hold a noisy t (at p = 1); the others stay clean.
        p_init: initial p.
        seed: seed of the module's own random generator (t and noise).
    """

    def __init__(
        self,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 1e-2,
        t_min: int = 5,
        t_max: int = 500,
        noise_std: float = 0.5,
        noise_type: str = "gaussian",
        ts_dist: str = "priority",
        pool_size: int = DEFAULT_POOL_SIZE,
        max_noisy_slots: int = DEFAULT_MAX_NOISY_SLOTS,
        p_init: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0 <= max_noisy_slots <= pool_size:
            raise ValueError(f"max_noisy_slots={max_noisy_slots!r} is not valid; expected an "
                             f"integer in [0, pool_size={pool_size}]")
        # Set before the base constructor: it draws the first pool through _redraw_pool.
        self.max_noisy_slots = int(max_noisy_slots)
        # clean_fraction is the pixel diffusion's fixed rule; the slot count here follows p.
        super().__init__(beta_schedule=beta_schedule, beta_start=beta_start, beta_end=beta_end,
                         t_min=t_min, t_max=t_max, noise_std=noise_std, noise_type=noise_type,
                         ts_dist=ts_dist, t_sampling="pool", pool_size=pool_size,
                         clean_fraction=0.0, p_init=p_init, seed=seed)

    # ----------------------------------------------------------------------------- pool

    def num_noisy_slots(self) -> torch.Tensor:
        """min(round(pool_size * p), max_noisy_slots), as a 0-d int64 tensor on p's device."""
        noisy = torch.round(self.p * self.pool_size).long()
        return noisy.clamp(0, self.max_noisy_slots)

    def _redraw_pool(self) -> None:
        # Every slot is drawn and the ones past the noisy count are then set clean, so the
        # count stays a device tensor (no host round trip when the adaptive update moves p).
        gen = self.generator(self.pool.device)
        draws = torch.multinomial(self._t_weights(), self.pool_size, replacement=True,
                                  generator=gen) + 1
        slots = torch.arange(self.pool_size, device=self.pool.device)
        self.pool.copy_(torch.where(slots < self.num_noisy_slots(), draws,
                                    torch.zeros_like(draws)))

    # ----------------------------------------------------------------------------- sampling

    def diffuse_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Diffuse one feature map [N, C, H, W] with a t per sample and channel.

        Returns the noisy map and t [N, C]; differentiable in ``x`` (G trains through it).
        """
        if x.dim() != FEATURE_MAP_DIMS:
            raise ValueError(f"expected a feature map [N, C, H, W], got shape {list(x.shape)}")
        n, c = x.shape[:2]
        t = self.sample_t(n * c, x.device)
        # Each (sample, channel) plane is one "sample" of the base process's q_sample.
        y = self.q_sample(x.reshape(n * c, *x.shape[2:]), t)
        return y.reshape(x.shape), t.reshape(n, c)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:  # type: ignore[override]
        """The noisy feature maps, each diffused with its own draws of t (D's feature_noise)."""
        if isinstance(features, torch.Tensor):
            raise TypeError(
                "FeatureDiffusion noises D's list of feature maps (Diffusion-ProjectedGAN's "
                "ProjectedDiscriminator); for images use dgan.diffusion.Diffusion"
            )
        return [self.diffuse_map(x)[0] for x in features]

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, pool={self.pool_size} "
                f"(at most {self.max_noisy_slots} noisy), t per sample and channel")
