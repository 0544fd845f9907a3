"""DiffAugment (Zhao et al., 2020): cheap differentiable augmentations for GAN discriminators.

Every op is affine in the image, so gradients reach the generator through it. The module is
meant for images in [-1, 1], NCHW; zero (mid-grey) fills what translation uncovers and what
cutout removes. Unlike ADA, DiffAugment is on all the time; the optional ``p`` applies the
whole chain to a random fraction of the batch instead (``p = 0`` is the identity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dgan.core.seeded_module import SeededModule

POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = POLICIES
DEFAULT_TRANSLATION_RATIO = 0.125
DEFAULT_CUTOUT_RATIO = 0.2

# Ranges of the colour factors, as in the DiffAugment paper.
BRIGHTNESS_SHIFT = (-0.5, 0.5)
SATURATION_FACTOR = (0.0, 2.0)
CONTRAST_FACTOR = (0.5, 1.5)


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise a policy ("color,translation" or a sequence of names) and validate it."""
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [name.strip() for name in names if name.strip()]
    bad = [name for name in names if name not in POLICIES]
    if bad:
        raise ValueError(
            f"unknown DiffAugment policy {', '.join(map(repr, bad))}; "
            f"valid names are {', '.join(POLICIES)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"DiffAugment policy {names} names an op twice")
    return tuple(names)


class DiffAugment(SeededModule):
    """DiffAugment with policies color, translation and cutout, applied in the given order.

    Args:
        policy: names of the ops to apply (a sequence, or one comma-separated string).
        translation_ratio: largest shift, as a fraction of the image side.
        cutout_ratio: side of the cut-out square, as a fraction of the image side.
        p: probability, per sample, of applying the whole chain (1: always, as in the paper).
        seed: seed of the module's own random generator.
    """

    def __init__(
        self,
        policy: str | Sequence[str] = DEFAULT_POLICY,
        translation_ratio: float = DEFAULT_TRANSLATION_RATIO,
        cutout_ratio: float = DEFAULT_CUTOUT_RATIO,
        p: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.policy = parse_policy(policy)
        if not 0 <= translation_ratio <= 1:
            raise ValueError(f"translation_ratio={translation_ratio!r} is not in [0, 1]")
        if not 0 <= cutout_ratio <= 1:
            raise ValueError(f"cutout_ratio={cutout_ratio!r} is not in [0, 1]")
        self.translation_ratio = float(translation_ratio)
        self.cutout_ratio = float(cutout_ratio)
        self.register_buffer("p", torch.tensor(0.0))
        self.set_p(p)
        self._ops: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
            "color": self._color,
            "translation": self._translation,
            "cutout": self._cutout,
        }

    @torch.no_grad()
    def set_p(self, value: float | Tensor) -> None:
        """Set the probability of augmenting a sample (clamped to [0, 1])."""
        self.p.copy_(torch.as_tensor(value, dtype=self.p.dtype).clamp(0, 1))

    def forward(self, images: Tensor) -> Tensor:
        """Augment a batch [N, C, H, W]; same shape and dtype, differentiable in ``images``."""
        if images.dim() != 4:
            raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(images.shape)}")
        gen = self.generator(images.device)
        # Drawn even when p is 1 or 0, so that the stream of draws does not depend on p.
        chosen = _uniform(images.shape[0], images, gen) < self.p.to(images.device, images.dtype)
        out = images
        for name in self.policy:
            out = self._ops[name](out, gen)
        # A select, not a blend: samples that are not chosen come back bit for bit.
        return torch.where(chosen.view(-1, 1, 1, 1), out, images)

    # ----------------------------------------------------------------------------- ops

    def _color(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n = x.shape[0]
        shift = _span(_uniform(n, x, gen), BRIGHTNESS_SHIFT).view(-1, 1, 1, 1)
        x = x + shift
        sat = _span(_uniform(n, x, gen), SATURATION_FACTOR).view(-1, 1, 1, 1)
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * sat + gray
        con = _span(_uniform(n, x, gen), CONTRAST_FACTOR).view(-1, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * con + mean

    def _translation(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, c, h, w = x.shape
        max_dy = int(h * self.translation_ratio + 0.5)
        max_dx = int(w * self.translation_ratio + 0.5)
        dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device, generator=gen)
        dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device, generator=gen)
        # Gather from a zero-padded copy: out[i, j] = x[i - dy, j - dx], zero outside.
        padded = torch.nn.functional.pad(x, (max_dx, max_dx, max_dy, max_dy))
        rows = torch.arange(h, device=x.device).view(1, -1, 1) - dy + max_dy
        cols = torch.arange(w, device=x.device).view(1, 1, -1) - dx + max_dx
        index = (rows * (w + 2 * max_dx) + cols).view(n, 1, h * w).expand(n, c, h * w)
        return padded.flatten(2).gather(2, index).view(n, c, h, w)

    def _cutout(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, _, h, w = x.shape
        size_y = int(h * self.cutout_ratio + 0.5)
        size_x = int(w * self.cutout_ratio + 0.5)
        # The square's centre is any pixel; the square is clipped at the image border.
        cy = torch.randint(0, h, (n, 1, 1), device=x.device, generator=gen)
        cx = torch.randint(0, w, (n, 1, 1), device=x.device, generator=gen)
        rows = torch.arange(h, device=x.device).view(1, -1, 1) - (cy - size_y // 2)
        cols = torch.arange(w, device=x.device).view(1, 1, -1) - (cx - size_x // 2)
        inside = (rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x)
        return x * (~inside).unsqueeze(1).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"policy={','.join(self.policy)}, translation_ratio={self.translation_ratio}, "
            f"cutout_ratio={self.cutout_ratio}, p={float(self.p):.4g}"
        )


def _uniform(n: int, like: Tensor, gen: torch.Generator) -> Tensor:
    # Drawn in float32 whatever the image dtype, so the same seed gives the same augmentations.
    return torch.rand(n, device=like.device, generator=gen).to(like.dtype)


def _span(u: Tensor, bounds: tuple[float, float]) -> Tensor:
    low, high = bounds
    return low + (high - low) * u
