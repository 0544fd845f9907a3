"""One home for loading a trained generator (or D): a dgan checkpoint, a network pickle or a
published network's name, rebuilt from its stored config and put on a device.

The checkpoint file itself is read (and its config checked) by :mod:`dgan.files.checkpoints`;
a StyleGAN2-ADA / Diffusion-GAN network pickle is converted in memory by
:mod:`dgan.interop.convert`, without running the code it embeds, and a published network's name
stands for its file, fetched once through the Hugging Face hub (:mod:`dgan.interop.hub`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgan.config.instantiation import build
from dgan.config.stored_config import StoredConfigRefused, check_stored_config
from dgan.config.timestep_input import discriminator_t_settings
from dgan.core.errors import ConfigError
from dgan.files.checkpoints import (
    D_PREFIX,
    DIFFUSION_T_KEY,
    G_EMA_PREFIX,
    PICKLE_SUFFIX,
    load_prefixed,
    read_checkpoint,
    what_file_is,
)


@dataclasses.dataclass
class LoadedGenerator:
    """G_ema of a checkpoint and what it was trained with.

    Args:
        path: the checkpoint file.
        G: the EMA generator, in eval mode, gradients off, on the requested device.
        config: the run's resolved config (plain dict).
        kimg: thousands of real images shown when the checkpoint was written.
    """

    path: Path
    G: nn.Module
    config: dict[str, Any]
    kimg: float

    @property
    def is_points(self) -> bool:
        """Whether G makes 2-D points (toy data) rather than images."""
        return not hasattr(self.G, "img_resolution")


def read_pickle_checkpoint(path: str | Path, key: str = "pkl") -> dict[str, Any]:
    """A network pickle converted to the checkpoint dict (see :mod:`dgan.interop.convert`).

    Args:
        path: the ``.pkl`` file.
        key: the argument name used in error messages.
    """
    import pickle

    from dgan.interop.convert import read_network_pickle_as_checkpoint
    from dgan.interop.hub import resolve_network
    from dgan.interop.persistence import NotAModuleError
    from dgan.interop.stylegan2_ada import MappingError

    path = resolve_network(path, key)  # a published network's name: its file in the hub cache
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such network pickle; give a StyleGAN2-ADA .pkl or "
                          "the name of a published network (diffusion-stylegan2-cifar10 ...)")
    problem = what_file_is(path)
    if problem.startswith(("is empty", "cannot be read", "is a text file")):
        raise ConfigError(f"{key}={path}: {problem}")
    if problem.startswith(("holds objects", "is truncated", "is a zip")):
        if problem.startswith("holds objects"):  # a torch zip: try it as a dgan checkpoint
            try:
                read_checkpoint(path, key)
            except StoredConfigRefused:
                raise
            except ConfigError:
                pass
            else:
                raise ConfigError(
                    f"{key}={path}: is a dgan checkpoint already, not a network pickle; use it "
                    "as ckpt= (generate, evaluate), resume= or init= (train)")
        raise ConfigError(f"{key}={path}: {problem.replace('checkpoint', 'network pickle')}")
    try:
        converted = read_network_pickle_as_checkpoint(path)
    except (pickle.UnpicklingError, MappingError, NotAModuleError, EOFError, KeyError,
            ValueError) as err:
        # UnsafePickleError is an UnpicklingError: it names the refused class.
        text = " ".join(str(err).split())[:300]
        if isinstance(err, EOFError):
            text = "the file ends early: truncated"
        raise ConfigError(f"{key}={path}: cannot convert the network pickle ({text}); nothing "
                          "in it was run") from err
    # The pickle's own data (training_set_kwargs) reaches the config the commands build from.
    check_stored_config(converted["dgan"]["config"], f"{key}={path}")
    return converted


def read_any_checkpoint(path: str | Path, key: str = "ckpt") -> dict[str, Any]:
    """A dgan checkpoint, or a network pickle converted to one (by the ``.pkl`` suffix, or a
    bare name: a published network's, see :mod:`dgan.interop.hub`)."""
    from dgan.interop.hub import is_bare_name

    if Path(path).suffix == PICKLE_SUFFIX or is_bare_name(path):
        return read_pickle_checkpoint(path, key)
    return read_checkpoint(path, key)


def build_generator(config: dict[str, Any]) -> nn.Module:
    """A freshly initialised generator as ``config["model"]["generator"]`` describes it."""
    node = (config.get("model") or {}).get("generator")
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError("model.generator: the checkpoint's config has no generator _target_")
    return build(node, "model.generator")


def load_generator(
    path: str | Path, device: torch.device | str = "cpu", key: str = "ckpt"
) -> LoadedGenerator:
    """Rebuild G_ema of a dgan checkpoint (or network pickle) and load its weights.

    Args:
        path: the ``.ckpt`` file, or a ``.pkl`` network pickle.
        device: where to put the generator.
        key: the argument name used in error messages.
    """
    state = read_any_checkpoint(path, key)
    config = state["dgan"]["config"]
    G = build_generator(config)
    load_prefixed(G, state["state_dict"], G_EMA_PREFIX, "model.generator", f"{key}={path}",
                  ConfigError)
    G = G.to(device).eval().requires_grad_(False)
    kimg = float(state["dgan"].get("cur_nimg", 0)) / 1000
    return LoadedGenerator(path=Path(path), G=G, config=config, kimg=kimg)


def check_generator_source(ckpt: str | None, pkl: str | None) -> None:
    """The commands that draw from a generator take exactly one of ``ckpt=`` and ``pkl=``."""
    if (ckpt is None) == (pkl is None):
        raise ConfigError("give exactly one of ckpt=RUN_DIR/checkpoints/last.ckpt or "
                          "pkl=NETWORK.pkl (or a published network's name)")


def load_generator_from(ckpt: str | None, pkl: str | None,
                        device: torch.device | str = "cpu") -> LoadedGenerator:
    """:func:`load_generator` of whichever of ``ckpt=`` / ``pkl=`` was given, errors naming it."""
    check_generator_source(ckpt, pkl)
    return load_generator(ckpt, device) if ckpt is not None else load_generator(pkl, device,
                                                                                key="pkl")


class NoDiscriminatorWeights(ConfigError):
    """The checkpoint holds G_ema only (e.g. written from a generator alone)."""


@dataclasses.dataclass
class LoadedDiscriminator:
    """The trained D of a checkpoint and the chain it was trained with.

    Args:
        D: the discriminator, in eval mode, gradients off.
        T: the diffusion's chain length when the checkpoint was written (None: no diffusion).
    """

    D: nn.Module
    T: int | None


def load_discriminator(path: str | Path, device: torch.device | str = "cpu",
                       key: str = "ckpt") -> LoadedDiscriminator:
    """Rebuild the D of a dgan checkpoint (its t input set from the run's diffusion).

    Args:
        path: the ``.ckpt`` file.
        device: where to put D.
        key: the argument name used in error messages.
    """
    state = read_checkpoint(path, key)
    config = state["dgan"]["config"]
    node = (config.get("model") or {}).get("discriminator")
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(f"{key}={path}: the checkpoint's config has no discriminator _target_")
    diffusion = config.get("diffusion")
    t_max = diffusion.get("t_max") if isinstance(diffusion, dict) else None
    D = build({**node, **discriminator_t_settings(node, t_max)}, "model.discriminator")
    load_prefixed(D, state["state_dict"], D_PREFIX, "model.discriminator", f"{key}={path}",
                  NoDiscriminatorWeights)
    T = state["state_dict"].get(DIFFUSION_T_KEY)
    return LoadedDiscriminator(D=D.to(device).eval().requires_grad_(False),
                               T=None if diffusion is None or T is None else int(T))


def resolve_device(device: str | None) -> torch.device:
    """The device to run on: CUDA when available for None, else as torch reads ``device``.

    Args:
        device: None, ``cpu``, ``cuda``, ``cuda:1`` ...
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device={device!r} is not valid; use cpu, cuda or cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: CUDA is not available here; use device=cpu")
    return resolved
