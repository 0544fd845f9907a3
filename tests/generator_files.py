"""Small generators saved as dgan checkpoints, for the commands that read one (project,
style_mixing, video): a 16 px StyleGAN2 of reduced widths and a 32 px FastGAN-lite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgan.inference.loading import build_generator

STYLEGAN2 = {"_target_": "dgan.networks.stylegan2.generator.Generator", "z_dim": 8, "w_dim": 8,
             "img_resolution": 16, "img_channels": 3, "channel_base": 64, "channel_max": 16,
             "mapping_layers": 2, "num_fp16_res": 0}
# 16 px: the blocks of 4, 8 and 16 px have 1 + 2 + 2 convolutions, and the last one a ToRGB.
STYLEGAN2_NUM_WS = 6
FASTGAN_LITE = {"_target_": "dgan.networks.projected.fastgan.FastGANGenerator", "z_dim": 16,
                "ngf": 8, "img_resolution": 32, "lite": True}
# Noise strengths are zero at initialisation; this makes the noise maps matter.
NOISE_STRENGTH = 0.2


def write_generator_checkpoint(node: dict[str, Any], path: Path, seed: int = 1) -> Path:
    """A checkpoint in dgan's format whose G_ema is a freshly initialised ``node``.

    Args:
        node: the ``model.generator`` config node.
        path: the ``.ckpt`` file to write.
        seed: torch seed of the initialisation.
    """
    config = {"model": {"generator": dict(node)}}
    torch.manual_seed(seed)
    G = build_generator(config)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(NOISE_STRENGTH)
    state = {f"G_ema.{k}": v for k, v in G.state_dict().items()}
    torch.save({"state_dict": state, "dgan": {"cur_nimg": 0, "cur_step": 0, "config": config}},
               path)
    return path


def loaded_generator(path: Path) -> nn.Module:
    """The G_ema of a checkpoint, as the commands load it."""
    from dgan.inference.loading import load_generator

    return load_generator(path).G
