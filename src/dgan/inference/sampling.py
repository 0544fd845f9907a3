"""Drawing from a trained generator the way StyleGAN2-ADA does: seeds, their latents, labels,
truncation and noise, and a seeded RNG. Used by generate, project, style_mixing and video.

The latent of seed ``s`` is ``np.random.RandomState(s).randn(z_dim)``, so a seed names the same
image whatever else is generated with it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from dgan.core.errors import ConfigError

NOISE_MODES = ("const", "random", "none")
MAX_SEED = 2**32 - 1  # np.random.RandomState takes 32-bit seeds


def parse_seeds(spec: Any, key: str = "seeds") -> list[int]:
    """Seeds from ``"0-63"``, ``"1,5,9"``, ``"0-3,10"``, an int or a list; repeats dropped.

    Args:
        spec: the ``seeds`` argument.
        key: the argument's name in error messages (``rows``, ``styles``: same syntax).
    """
    parts: list[Any] = spec if isinstance(spec, list) else str(spec).split(",")
    seeds: list[int] = []
    for part in parts:
        text = str(part).strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
        if not match:
            raise ConfigError(
                f"{key}={spec!r} is not valid; use ranges and numbers like 0-63, 1,5,9 or 0-3,10"
            )
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise ConfigError(f"{key}={spec!r}: range {text} runs backwards; write {stop}-{start}")
        if stop > MAX_SEED:
            raise ConfigError(f"{key}={spec!r}: seeds must be in [0, {MAX_SEED}]")
        seeds.extend(range(start, stop + 1))
    return list(dict.fromkeys(seeds))


def seed_latent(seed: int, z_dim: int) -> torch.Tensor:
    """The latent [1, z_dim] of ``seed`` (StyleGAN2-ADA: ``RandomState(seed).randn``)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim).astype(np.float32))


def class_label(G: nn.Module, class_idx: int | None) -> torch.Tensor:
    """The label [1, c_dim] for ``class_idx``; checks it against G's conditioning.

    Args:
        G: the generator (``c_dim`` 0: unconditional).
        class_idx: the requested class, or None.
    """
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim == 0:
        if class_idx is not None:
            raise ConfigError(
                f"class_idx={class_idx}: this model is unconditional (c_dim=0); drop class_idx"
            )
        return torch.zeros(1, 0)
    if class_idx is None:
        raise ConfigError(
            f"class_idx is required: this model is conditional with {c_dim} classes; "
            f"give class_idx=0..{c_dim - 1}"
        )
    if not 0 <= class_idx < c_dim:
        raise ConfigError(f"class_idx={class_idx} is out of range; valid: 0..{c_dim - 1}")
    label = torch.zeros(1, c_dim)
    label[0, class_idx] = 1
    return label


def generator_kwargs(G: nn.Module, trunc: float, noise_mode: str) -> dict[str, Any]:
    """G's call keywords for ``trunc`` and ``noise_mode``; one error line where G lacks them.

    Args:
        G: a StyleGAN2 generator (mapping + synthesis) or one without a mapping network.
        trunc: truncation psi (only 1 without a mapping network).
        noise_mode: ``const``, ``random`` or ``none``.
    """
    if noise_mode not in NOISE_MODES:
        raise ConfigError(f"noise_mode={noise_mode!r} is not valid; choose one of {NOISE_MODES}")
    stylegan = hasattr(G, "mapping") and hasattr(G, "synthesis")
    if not stylegan:
        if trunc != 1:
            raise ConfigError(
                f"trunc={trunc}: truncation needs a StyleGAN2 generator; "
                f"{type(G).__name__} has no mapping network (use trunc=1)"
            )
        return {}
    return {"truncation_psi": trunc, "noise_mode": noise_mode}


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device | str) -> Iterator[None]:
    """torch's RNG seeded with ``seed`` inside the block, the caller's state restored after.

    Args:
        seed: the seed.
        device: where the random numbers are drawn (a CUDA device forks CUDA's RNG too).
    """
    with torch.random.fork_rng(devices=[] if torch.device(device).type == "cpu" else None):
        torch.manual_seed(seed)
        yield
