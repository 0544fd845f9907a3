"""The adaptive forward diffusion of Diffusion-GAN, as a plain torch module.

    y ~ q(y | x, t) = N(sqrt(abar_t) x, (1 - abar_t) sigma^2 I),   t ~ pi(t) on {1..T}

Both real and generated samples pass through it before the discriminator; the generator gets
its gradient through ``q_sample`` (the noise is reparameterised). T = t_min + round(p (t_max -
t_min)) follows the overfitting level p, which :mod:`dgan.diffusion.adaptive` updates (the
callback in a dgan run, :func:`~dgan.diffusion.adaptive.adjust_p` in a user's own loop).

Everything that defines the process at a point of training (p, T, the t pool and the random
generator) lives in the module's ``state_dict``, so a checkpoint restores it exactly. Sampling
and the adaptive update run on the tensors' device with no host round trip.

Plug it into any GAN::

    diffusion = Diffusion(noise_std=0.05, t_max=500)
    y_real, t_real = diffusion(x_real)
    y_fake, t_fake = diffusion(G(z))               # differentiable in G(z)
    d_loss = softplus(D(y_fake, t_fake)) + softplus(-D(y_real, t_real))
    adjust_p(diffusion, D(y_real, t_real).sign().mean(), d_target=0.6,  # every 4 steps
             num_images=batch * 4, ada_kimg=100)
"""

from __future__ import annotations

from typing import Any

import torch

from dgan.core.seeded_module import SeededModule
from dgan.diffusion.schedules import SCHEDULES, alphas_bar, betas_on_grid

NOISE_TYPES = ("gaussian", "bernoulli")
TS_DISTS = ("priority", "uniform")
T_SAMPLINGS = ("pool", "per_sample")


class Diffusion(SeededModule):
    """Adaptive forward diffusion q(y | x, t) with a timestep distribution over {1..T}.

    Args:
        beta_schedule: one of linear | quad | const | jsd | sigmoid | cosine | continuous_t.
        beta_start: first beta of the linear, quad and sigmoid schedules.
        beta_end: last beta of the linear, quad and sigmoid schedules; the const value.
        t_min: chain length T at p = 0.
        t_max: chain length T at p = 1.
        noise_std: sigma, the scale of the noise relative to the data.
        noise_type: gaussian | bernoulli (+-sigma).
        ts_dist: t distribution on {1..T}: priority (weight t - 1, favours long chains) | uniform.
        t_sampling: pool (the reference: a pool of t values, redrawn when T changes, some slots
            clean) | per_sample (the paper's equation: a fresh t per sample, never clean).
        pool_size: number of slots of the pool.
        clean_fraction: fraction of pool slots fixed at t = 0 (sample reaches D clean).
        p_init: initial p.
        seed: seed of the module's own random generator (t and noise).
    """

    def __init__(
        self,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
        t_min: int = 10,
        t_max: int = 1000,
        noise_std: float = 0.05,
        noise_type: str = "gaussian",
        ts_dist: str = "priority",
        t_sampling: str = "pool",
        pool_size: int = 64,
        clean_fraction: float = 0.5,
        p_init: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        _check_choice("beta_schedule", beta_schedule, SCHEDULES)
        _check_choice("noise_type", noise_type, NOISE_TYPES)
        _check_choice("ts_dist", ts_dist, TS_DISTS)
        _check_choice("t_sampling", t_sampling, T_SAMPLINGS)
        _check(t_min >= 1, "t_min", t_min, "an integer >= 1 (t = 0 is the clean sample)")
        _check(t_max >= t_min, "t_max", t_max, f"an integer >= t_min ({t_min})")
        _check(noise_std > 0, "noise_std", noise_std, "a number > 0")
        _check(0 < beta_start <= beta_end < 1, "beta_start", beta_start,
               "0 < beta_start <= beta_end < 1")
        _check(pool_size >= 1, "pool_size", pool_size, "an integer >= 1")
        _check(0 <= clean_fraction < 1, "clean_fraction", clean_fraction, "0 <= clean_fraction < 1")
        _check(0 <= p_init <= 1, "p_init", p_init, "a number in [0, 1]")
        self.beta_schedule = beta_schedule
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.t_min = int(t_min)
        self.t_max = int(t_max)
        self.noise_std = float(noise_std)
        self.noise_type = noise_type
        self.ts_dist = ts_dist
        self.t_sampling = t_sampling
        self.pool_size = int(pool_size)
        self.num_clean = int(round(pool_size * clean_fraction))

        self.register_buffer("p", torch.tensor(float(p_init)))
        self.register_buffer("T", torch.tensor(self.t_min, dtype=torch.long))
        self.register_buffer("pool", torch.zeros(self.pool_size, dtype=torch.long))
        # Derived from T: rebuilt on every change and after loading, so not saved.
        self.register_buffer("sqrt_abar", torch.ones(self.t_max + 1), persistent=False)
        self.register_buffer("sqrt_one_minus_abar", torch.zeros(self.t_max + 1), persistent=False)
        self.set_p(self.p)

    # ----------------------------------------------------------------------------- state

    @torch.no_grad()
    def set_p(self, p: torch.Tensor | float) -> None:
        """Set p, derive T from it, rebuild the schedule over T steps and redraw the pool."""
        p = torch.as_tensor(p, dtype=torch.float32, device=self.p.device).clamp(0, 1)
        self.p.copy_(p)
        span = self.t_max - self.t_min
        self.T.copy_((self.t_min + torch.round(p * span)).long().clamp(self.t_min, self.t_max))
        self._rebuild_schedule()
        self._redraw_pool()

    def _rebuild_schedule(self) -> None:
        # float64: cumulative products over 1000 steps lose precision in float32. Computed on
        # T's device so that an update during training needs no host round trip; MPS has no
        # float64, so it goes through the CPU.
        T = self.T.cpu() if self.T.device.type == "mps" else self.T
        betas = betas_on_grid(self.beta_schedule, T, self.t_max, self.beta_start, self.beta_end)
        abar = alphas_bar(betas)
        self.sqrt_abar.copy_(abar.sqrt().to(self.sqrt_abar))
        self.sqrt_one_minus_abar.copy_((1 - abar).sqrt().to(self.sqrt_abar))

    def _t_weights(self) -> torch.Tensor:
        """Unnormalised pi(t) on the grid t = 1..t_max (zero beyond T)."""
        k = torch.arange(1, self.t_max + 1, device=self.T.device, dtype=torch.float32)
        if self.ts_dist == "priority":
            # weight t - 1, so t = 1 never appears (as in the reference), unless T = 1.
            w = torch.where(self.T > 1, k - 1, torch.ones_like(k))
        else:
            w = torch.ones_like(k)
        return torch.where(k <= self.T, w, torch.zeros_like(w))

    def _redraw_pool(self) -> None:
        num_noisy = self.pool_size - self.num_clean
        gen = self.generator(self.pool.device)
        noisy = torch.multinomial(self._t_weights(), num_noisy, replacement=True, generator=gen)
        self.pool[:num_noisy] = noisy + 1
        self.pool[num_noisy:] = 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._rebuild_schedule()

    # ----------------------------------------------------------------------------- sampling

    def sample_t(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        """Draw n timesteps (int64, on ``device``) from the current pool or distribution."""
        device = self.pool.device if device is None else torch.device(device)
        gen = self.generator(self.pool.device)
        if self.t_sampling == "pool":
            slots = torch.randint(self.pool_size, (n,), device=self.pool.device, generator=gen)
            t = self.pool[slots]
        else:
            t = torch.multinomial(self._t_weights(), n, replacement=True, generator=gen) + 1
        return t.to(device)

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Sample y ~ q(y | x0, t) for a batch of any shape [N, ...]; differentiable in x0."""
        if noise is None:
            noise = self.sample_noise(x0)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a = self.sqrt_abar.to(x0.device)[t].reshape(shape).to(x0.dtype)
        s = self.sqrt_one_minus_abar.to(x0.device)[t].reshape(shape).to(x0.dtype)
        return a * x0 + s * noise

    def sample_noise(self, like: torch.Tensor) -> torch.Tensor:
        """Noise of ``like``'s shape, scaled by noise_std, from the module's generator."""
        gen = self.generator(like.device)
        if self.noise_type == "gaussian":
            noise = torch.randn(like.shape, device=like.device, dtype=like.dtype, generator=gen)
        else:
            bits = torch.randint(2, like.shape, device=like.device, generator=gen)
            noise = bits.to(like.dtype) * 2 - 1
        return noise * self.noise_std

    def forward(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Diffuse a batch: returns (y, t) with t drawn per sample."""
        t = self.sample_t(x0.shape[0], x0.device)
        return self.q_sample(x0, t), t

    def extra_repr(self) -> str:
        return (
            f"schedule={self.beta_schedule}, t=[{self.t_min}, {self.t_max}], "
            f"noise_std={self.noise_std}, ts_dist={self.ts_dist}, t_sampling={self.t_sampling}"
        )


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is not valid; expected {valid}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, value, f"one of {', '.join(choices)}")
