"""StyleGAN2 training presets of StyleGAN2-ADA / Diffusion-GAN (design.md, section 2).

``preset(name, resolution, num_gpus)`` returns a flat dict of hyperparameters; network
keywords derive from it (``channel_base = fmaps * 32768``, ``channel_max = 512``).
"""

from __future__ import annotations

import copy
from typing import Any

# Shared by every preset: z = w = 512, top 4 resolutions in reduced precision, conv clamp 256,
# non-saturating loss with lazy R1 and path-length regularisation, style mixing 0.9.
COMMON: dict[str, Any] = {
    "z_dim": 512,
    "w_dim": 512,
    "channel_max": 512,
    "num_fp16_res": 4,
    "conv_clamp": 256,
    "mbstd_num_channels": 1,
    "g_architecture": "skip",
    "d_architecture": "resnet",
    "pl_weight": 2.0,
    "style_mixing_prob": 0.9,
    "adam_betas": (0.0, 0.99),
    "adam_eps": 1e-8,
}

# ref_gpus: GPUs the preset was tuned on; total_kimg: the reference run length.
# Diffusion-GAN runs cifar and stl10 on 4 reference GPUs, so their batch_gpu (and so the
# minibatch-std group) is 64 // 4 = 16 (design.md section 6); stl10's run length follows cifar.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar": {
        "batch": 64, "mbstd_group": 32, "fmaps": 1.0, "lr": 0.0025, "r1_gamma": 0.01,
        "ema_kimg": 500.0, "ema_rampup": 0.05, "map_layers": 2, "ref_gpus": 4,
        "total_kimg": 100_000, "pl_weight": 0.0, "style_mixing_prob": 0.0,
        "d_architecture": "orig",
    },
    "stl10": {
        "batch": 64, "mbstd_group": 32, "fmaps": 1.0, "lr": 0.0025, "r1_gamma": 0.05,
        "ema_kimg": 500.0, "ema_rampup": 0.05, "map_layers": 2, "ref_gpus": 4,
        "total_kimg": 100_000,
    },
    "paper256": {
        "batch": 64, "mbstd_group": 8, "fmaps": 0.5, "lr": 0.0025, "r1_gamma": 1.0,
        "ema_kimg": 20.0, "ema_rampup": None, "map_layers": 8, "ref_gpus": 8,
        "total_kimg": 25_000,
    },
    "paper512": {
        "batch": 64, "mbstd_group": 8, "fmaps": 1.0, "lr": 0.0025, "r1_gamma": 0.5,
        "ema_kimg": 20.0, "ema_rampup": None, "map_layers": 8, "ref_gpus": 8,
        "total_kimg": 25_000,
    },
    "paper1024": {
        "batch": 32, "mbstd_group": 4, "fmaps": 1.0, "lr": 0.002, "r1_gamma": 2.0,
        "ema_kimg": 10.0, "ema_rampup": None, "map_layers": 8, "ref_gpus": 8,
        "total_kimg": 25_000,
    },
    "stylegan2": {
        "batch": 32, "mbstd_group": 4, "fmaps": 1.0, "lr": 0.002, "r1_gamma": 10.0,
        "ema_kimg": 10.0, "ema_rampup": None, "map_layers": 8, "ref_gpus": 8,
        "total_kimg": 25_000,
    },
}  # fmt: skip

VALID_NAMES = (*PRESETS, "auto")


def _auto(resolution: int, num_gpus: int) -> dict[str, Any]:
    # Batch grows with GPUs but is capped so small resolutions do not get absurd batches;
    # the mbstd group stays <= 4 so its statistic behaves the same for every batch.
    batch = max(min(num_gpus * min(4096 // resolution, 32), 64), num_gpus)
    return {
        "batch": batch,
        "mbstd_group": min(batch // num_gpus, 4),
        "fmaps": 1.0 if resolution >= 512 else 0.5,
        "lr": 0.002 if resolution >= 1024 else 0.0025,
        "r1_gamma": 0.0002 * resolution**2 / batch,
        "ema_kimg": batch * 10 / 32,
        "ema_rampup": 0.05,
        "map_layers": 2,
        "ref_gpus": num_gpus,
        "total_kimg": 25_000,
    }


def preset(name: str, resolution: int, num_gpus: int = 1) -> dict[str, Any]:
    """Hyperparameters of preset ``name`` for images of ``resolution`` trained on ``num_gpus``.

    Returns a new dict with the keys of the preset table (batch, mbstd_group, fmaps, lr,
    r1_gamma, ema_kimg, ema_rampup, map_layers, pl_weight, style_mixing_prob,
    d_architecture, ...) plus derived ones: ``channel_base`` (fmaps * 32768), ``batch_gpu``
    (per-GPU batch), ``resolution``, ``num_gpus`` and ``name``.

    Raises:
        ValueError: unknown ``name``, a resolution that is not a power of two >= 8, or a batch
            that does not split evenly over ``num_gpus``.
    """
    if name not in VALID_NAMES:
        valid = ", ".join(VALID_NAMES)
        raise ValueError(f"unknown StyleGAN2 preset {name!r}; valid names: {valid}")
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution={resolution} must be a power of two >= 8")
    if num_gpus < 1:
        raise ValueError(f"num_gpus={num_gpus} must be >= 1")
    spec = _auto(resolution, num_gpus) if name == "auto" else PRESETS[name]
    out = copy.deepcopy(COMMON)
    out.update(copy.deepcopy(spec))
    if out["batch"] % num_gpus:
        raise ValueError(
            f"preset {name!r}: batch {out['batch']} does not split over {num_gpus} GPUs"
        )
    # The reference's per-GPU pass: the preset's batch over the GPUs it was tuned on; auto
    # tunes on the GPUs at hand.
    out["batch_gpu"] = out["batch"] // out["ref_gpus"]
    out["channel_base"] = int(out["fmaps"] * 32768)
    out["resolution"] = resolution
    out["num_gpus"] = num_gpus
    out["name"] = name
    return out
