"""A StyleGAN2-ADA / Diffusion-GAN / Diffusion-ProjectedGAN network pickle as a dgan checkpoint.

The pickle is read as data (:mod:`dgan.interop.persistence`, nothing it embeds runs), its
networks are mapped onto dgan's by name with every shape checked
(:mod:`dgan.interop.stylegan2_ada`, or :mod:`dgan.interop.projected_gan` for Projected GAN's
networks), and the result is the dict ``dgan.train`` writes: the
weights under ``state_dict`` (``G.``, ``G_ema.``, ``D.``) and, under ``dgan``, a plain-dict
config whose ``model.generator`` / ``model.discriminator`` rebuild the networks. It loads with
``weights_only=True`` like every dgan checkpoint, so ``generate``, ``evaluate`` and
``train init=`` take it as they take their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgan.files.atomic import atomic_write
from dgan.interop import projected_gan
from dgan.interop.insgen import (
    has_contrastive_heads,
    instance_discriminator_from_pickle,
    loss_state_from_pickle,
)
from dgan.interop.persistence import NetworkPickle, load_network_pickle
from dgan.interop.stylegan2_ada import (
    config_from_pickle,
    discriminator_from_pickle,
    generator_from_pickle,
)

GENERATOR_TARGET = "dgan.networks.stylegan2.Generator"
DISCRIMINATOR_TARGET = "dgan.networks.stylegan2.Discriminator"
INSTANCE_DISCRIMINATOR_TARGET = "dgan.networks.insgen.InstanceDiscriminator"
DATASET_TARGET = "dgan.data.images.ImageDataset"
# training_set_kwargs of the reference that mean the same in dgan's ImageDataset.
DATASET_KEYS = ("path", "resolution", "use_labels", "xflip", "max_size")
IMAGES_PER_KIMG = 1000


def _prefixed(prefix: str, net: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().clone() for k, v in net.state_dict().items()}


def _dataset_config(training_set_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    if not training_set_kwargs:
        return None
    node = {"_target_": DATASET_TARGET}
    node.update({k: training_set_kwargs[k] for k in DATASET_KEYS if k in training_set_kwargs})
    return node


def checkpoint_from_network_pickle(net_pkl: NetworkPickle, source: str) -> dict[str, Any]:
    """The dgan checkpoint dict of a read network pickle.

    Args:
        net_pkl: the pickle as read by :func:`~dgan.interop.persistence.load_network_pickle`.
        source: where it came from (recorded in the config).

    Raises:
        MappingError: a network does not map onto dgan's (names the tensors).
    """
    if projected_gan.is_projected_gan_pickle(net_pkl):
        return _projected_gan_checkpoint(net_pkl, source)
    info = config_from_pickle(net_pkl)
    networks = net_pkl.networks
    G_ema = generator_from_pickle(networks["G_ema"] if "G_ema" in networks else networks["G"])
    G = generator_from_pickle(networks["G"]) if "G" in networks else G_ema
    state = {**_prefixed("G", G), **_prefixed("G_ema", G_ema)}
    model: dict[str, Any] = {"generator": {"_target_": GENERATOR_TARGET, **info["generator"]}}
    if "D" in networks and has_contrastive_heads(net_pkl):
        # Diffusion-InsGen: D with its heads, and D_ema and the queues as InsGenLoss keeps them.
        D = instance_discriminator_from_pickle(net_pkl)
        state.update({**_prefixed("D", D), **loss_state_from_pickle(net_pkl)})
        model["discriminator"] = {"_target_": INSTANCE_DISCRIMINATOR_TARGET,
                                  **info["discriminator"], "head_dim": D.head_dim}
    elif "D" in networks:
        state.update(_prefixed("D", discriminator_from_pickle(networks["D"])))
        model["discriminator"] = {"_target_": DISCRIMINATOR_TARGET, **info["discriminator"]}
    return _checkpoint(state, model, info, net_pkl, source)


def _checkpoint(state: dict[str, torch.Tensor], model: dict[str, Any], info: dict[str, Any],
                net_pkl: NetworkPickle, source: str) -> dict[str, Any]:
    progress = net_pkl.progress or {}
    cur_nimg = int(progress.get("cur_nimg", 0) or 0)
    config: dict[str, Any] = {
        "model": model,
        "dataset": _dataset_config(net_pkl.training_set_kwargs),
        "converted_from": source,
        "presets": info["presets"],
        "p": info["p"],
        "reference_diffusion": info["diffusion"],
    }
    return {
        "state_dict": state,
        "dgan": {"cur_nimg": cur_nimg, "cur_step": 0, "config": config},
    }


def _projected_gan_checkpoint(net_pkl: NetworkPickle, source: str) -> dict[str, Any]:
    info = projected_gan.config_from_pickle(net_pkl)
    nets = projected_gan.networks_from_pickle(net_pkl)
    state = {k: v for name, net in nets.items() for k, v in _prefixed(name, net).items()}
    model: dict[str, Any] = {"generator": info["generator"]}
    if info["discriminator"] is not None:
        model["discriminator"] = info["discriminator"]
    return _checkpoint(state, model, info, net_pkl, source)


def read_network_pickle_as_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``path`` (a network pickle) and convert it; see :func:`checkpoint_from_network_pickle`.

    Diffusion-GAN pickles hold instances of classes of their embedded source (its diffusion's
    augmentation ``Identity``), and Projected GAN pickles their networks as torch modules with
    classes by reference: those are kept as inert data, never constructed or called.
    """
    net_pkl = load_network_pickle(path, opaque_classes=True)
    return checkpoint_from_network_pickle(net_pkl, str(path))


def save_checkpoint(checkpoint: dict[str, Any], dest: str | os.PathLike[str]) -> Path:
    """Write a converted checkpoint atomically."""
    return atomic_write(dest, lambda f: torch.save(checkpoint, f))


def describe(checkpoint: dict[str, Any]) -> str:
    """One line on what a converted checkpoint holds."""
    config = checkpoint["dgan"]["config"]
    g = config["model"]["generator"]
    names = checkpoint["state_dict"]
    nets = sorted({name.split(".", 1)[0] for name in names} - {"loss"})
    # InsGen's parts: D's heads, and what its loss keeps (D_ema, queues).
    insgen = ["heads"] if any(name.startswith("D.heads.") for name in names) else []
    insgen += sorted({name.split(".")[1] for name in names if name.startswith("loss.")})
    held = "+".join(nets) + (f" (InsGen: {', '.join(insgen)})" if insgen else "")
    presets = ", ".join(config["presets"]) or "none"
    p = "unknown" if config["p"] is None else f"{config['p']:.4f}"
    kimg = checkpoint["dgan"]["cur_nimg"] / IMAGES_PER_KIMG
    return (f"{held} at {g['img_resolution']} px, {g['img_channels']} channel(s), "
            f"c_dim {g['c_dim']}; matching presets: {presets}; p {p}; kimg {kimg:g}")
