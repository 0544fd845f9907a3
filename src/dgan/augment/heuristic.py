"""How p moves: ADA's own overfitting heuristic, and the rule that ties it to the diffusion.

Without diffusion, StyleGAN2-ADA watches r_t = E[sign(D(x_real))]: close to 1, D is confident
on every real image, i.e. it overfits. Every ``interval`` steps p moves by a fixed amount
towards keeping r_t at ``target``, at a speed that lets p cross [0, 1] in ``ada_kimg``
thousand images. With the diffusion (Diffusion-GAN's ``--aug ada``), the diffusion runs that
heuristic instead and ADA just follows it, capped at ``ada_maxp``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

DEFAULT_TARGET = 0.6
DEFAULT_INTERVAL = 4
DEFAULT_ADA_KIMG = 500.0
DEFAULT_ADA_MAXP = 0.25
_IMAGES_PER_KIMG = 1000


def tie_to_diffusion(diffusion_p: float | Tensor, ada_maxp: float = DEFAULT_ADA_MAXP) -> float:
    """ADA's p when the diffusion drives it: min(diffusion_p, ada_maxp) (Diffusion-GAN's rule)."""
    if not 0 <= ada_maxp <= 1:
        raise ValueError(f"ada_maxp={ada_maxp!r} is not valid; expected a number in [0, 1]")
    return min(float(diffusion_p), float(ada_maxp))


class AdaptiveAugmentTuner(nn.Module):
    """ADA's adaptive heuristic: p += sign(r_t - target) * images / (ada_kimg * 1000).

    Call :meth:`observe` with the real logits of every D step, then :meth:`step` once per
    training step; p is updated every ``interval`` steps and pushed to ``augment`` if given.

    Args:
        target: target of r_t = E[sign(D(real))]; above it p grows.
        interval: training steps between two updates of p.
        ada_kimg: thousands of images over which p may move from 0 to 1.
        batch_size: images per step over all ranks (None: count the images observed here).
        p_init: initial p.
        augment: a module with ``set_p`` that follows p (held unregistered: saved by its owner).
        all_reduce: sums [sign sum, logit count, image count] over ranks before an update.
    """

    def __init__(
        self,
        target: float = DEFAULT_TARGET,
        interval: int = DEFAULT_INTERVAL,
        ada_kimg: float = DEFAULT_ADA_KIMG,
        batch_size: int | None = None,
        p_init: float = 0.0,
        augment: nn.Module | None = None,
        all_reduce: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= target <= 1:
            raise ValueError(f"target={target!r} is not valid; expected a number in [0, 1]")
        if interval < 1:
            raise ValueError(f"interval={interval!r} is not valid; expected an integer >= 1")
        if not ada_kimg > 0:
            raise ValueError(f"ada_kimg={ada_kimg!r} is not valid; expected a number > 0")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is not valid; expected None or >= 1")
        if augment is not None and not callable(getattr(augment, "set_p", None)):
            raise TypeError(f"augment must have a set_p method, got {type(augment).__name__}")
        self.target = float(target)
        self.interval = int(interval)
        self.ada_kimg = float(ada_kimg)
        self.batch_size = batch_size
        # A tuple hides the module from nn.Module's registration (no duplicate state).
        self._followers: tuple[nn.Module, ...] = () if augment is None else (augment,)
        self.all_reduce = all_reduce
        self.steps = 0
        self.register_buffer("p", torch.tensor(0.0))
        self.register_buffer("r_t", torch.tensor(0.0))  # the last r_t used, for logging
        # [sum of signs, number of logits, number of images] since the last update.
        self.register_buffer("stats", torch.zeros(3))
        self.set_p(p_init)

    @torch.no_grad()
    def set_p(self, value: float | Tensor) -> None:
        """Set p (clamped to [0, 1]) and push it to the augmentation module."""
        value = torch.as_tensor(value, dtype=self.p.dtype, device=self.p.device)
        self.p.copy_(value.clamp(0, 1))
        for follower in self._followers:
            follower.set_p(self.p)  # type: ignore[operator]

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """Accumulate the signs of D's logits on real images (no host round trip)."""
        logits = real_logits.detach()
        counts = torch.stack(
            [
                torch.sign(logits).sum().to(self.stats),
                torch.tensor(float(logits.numel()), device=self.stats.device),
                torch.tensor(float(logits.shape[0]), device=self.stats.device),
            ]
        )
        self.stats.add_(counts)

    @torch.no_grad()
    def step(self) -> bool:
        """Count one training step; every ``interval`` steps, update p. True if it did."""
        self.steps += 1
        if self.steps % self.interval:
            return False
        stats = self.stats.clone()
        if self.all_reduce is not None:
            stats = self.all_reduce(stats)
        sign_sum, num_logits, num_images = stats
        if self.batch_size is not None:
            num_images = torch.tensor(float(self.batch_size * self.interval)).to(stats)
        self.update(sign_sum / num_logits.clamp(min=1), num_images)
        self.stats.zero_()
        return True

    @torch.no_grad()
    def update(self, r_t: float | Tensor, num_images: float | Tensor) -> None:
        """One move of p for a given r_t over ``num_images`` images."""
        r_t = torch.as_tensor(r_t, dtype=self.p.dtype, device=self.p.device)
        num_images = torch.as_tensor(num_images, dtype=self.p.dtype, device=self.p.device)
        self.r_t.copy_(r_t)
        adjust = torch.sign(r_t - self.target) * num_images / (self.ada_kimg * _IMAGES_PER_KIMG)
        self.set_p(self.p + adjust)

    def get_extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        for follower in self._followers:
            follower.set_p(self.p)  # type: ignore[operator]

    def extra_repr(self) -> str:
        return (
            f"target={self.target}, interval={self.interval}, ada_kimg={self.ada_kimg}, "
            f"p={float(self.p):.4g}"
        )
