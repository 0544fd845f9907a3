"""Reading dgan checkpoints outside training: the run config and G_ema.

A checkpoint written by ``dgan.train`` is a Lightning ``.ckpt`` holding plain data only (it
loads with ``weights_only=True``): the weights under ``state_dict`` and, under ``dgan``, the
images seen and the resolved run config as a plain dict. The generator is rebuilt from that
config (``model.generator`` has a ``_target_``), so a checkpoint does not pickle code and keeps
working as long as the network's constructor and parameter names do.

A StyleGAN2-ADA / Diffusion-GAN network pickle (``.pkl``) is read as one too: converted in
memory by :mod:`dgan.interop.convert`, without running the code it embeds. The name of one of
the authors' published networks stands for its file, fetched once through the Hugging Face hub
(:mod:`dgan.interop.hub`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgan.config.instantiation import ConfigError, build
from dgan.config.stored_config import StoredConfigRefused, check_stored_config
from dgan.config.timestep_input import discriminator_t_settings

G_EMA_PREFIX = "G_ema."
D_PREFIX = "D."
# The diffusion's current chain length, a buffer of the module's diffusion.
DIFFUSION_T_KEY = "diffusion.T"
PICKLE_SUFFIX = ".pkl"


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


# The first bytes of the two formats: torch.save's zip archive and a pickle (protocol >= 2).
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"
# What to do with a network pickle given where a checkpoint is expected.
PICKLE_HINT = ("a StyleGAN2-ADA / Diffusion-GAN network pickle goes to pkl= (generate, evaluate), "
               "init=FILE.pkl (train) or python -m dgan.convert FILE.pkl OUT.ckpt")


def what_file_is(path: str | Path) -> str:
    """Why ``path`` cannot be read as a dgan checkpoint, in words, from its size and first
    bytes only (nothing in it is unpickled or run).

    Args:
        path: the file given as a checkpoint.
    """
    import zipfile

    path = Path(path)
    if path.is_dir():
        return "is a directory, not a checkpoint file"
    if not path.exists():
        return "no such file"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if size == 0:
        return "is empty (0 bytes), not a checkpoint; the save was interrupted or the copy failed"
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return (f"is truncated or damaged ({size:,} bytes of a zip archive without its end: "
                    "the save or the copy stopped early); use another checkpoint")
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if not any(name.endswith("data.pkl") for name in names):
            return "is a zip archive but not a checkpoint (a dataset zip?)"
        return ("holds objects a dgan checkpoint never holds (classes or code in its pickle); "
                "refused, nothing in it was run")
    if head.startswith(PICKLE_MAGIC):
        return f"is a pickle, not a dgan checkpoint; {PICKLE_HINT}"
    if head[:1].isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "is a text file, not a checkpoint"
    return "is not a checkpoint (neither a torch checkpoint nor a pickle)"


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def read_checkpoint(path: str | Path, key: str = "ckpt") -> dict[str, Any]:
    """The raw checkpoint dict, checked to be a dgan checkpoint.

    Args:
        path: the ``.ckpt`` file.
        key: the argument name used in error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{key}={path}: no such checkpoint file; give a .ckpt written by dgan.train, "
            "e.g. RUN_DIR/checkpoints/last.ckpt or best.ckpt"
        )
    import warnings

    if not _starts_with(path, ZIP_MAGIC):  # dgan writes zip checkpoints only: not unpickled
        raise ConfigError(f"{key}={path}: {what_file_is(path)}")
    try:
        # weights_only: tensors and plain data only, so nothing in the file runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - truncated, foreign or pickled-code files: say which
        # torch's own text advises weights_only=False, which would run the file's code.
        raise ConfigError(f"{key}={path}: {what_file_is(path)}") from None
    dgan_state = state.get("dgan") if isinstance(state, dict) else None
    if not isinstance(dgan_state, dict) or not isinstance(dgan_state.get("config"), dict):
        kind = "Lightning checkpoint" if isinstance(state, dict) and "state_dict" in state \
            else "torch file"
        raise ConfigError(f"{key}={path}: a {kind}, but not one written by dgan (no 'dgan' "
                          "section with the run config)")
    if not isinstance(state.get("state_dict"), dict):
        raise ConfigError(f"{key}={path}: the checkpoint has no state_dict")
    # Every reader builds parts of this config: it may name only what dgan builds.
    check_stored_config(dgan_state["config"], f"{key}={path}")
    return state


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


def load_prefixed(net: nn.Module, state_dict: dict[str, Any], prefix: str, config_key: str,
                  where: str, missing: type[ConfigError] | None = None) -> bool:
    """Load the ``prefix``-ed weights of a checkpoint's state dict into ``net``, strictly;
    False when it holds none and ``missing`` is None.

    Args:
        net: the network rebuilt from the config.
        state_dict: the checkpoint's ``state_dict``.
        prefix: the module attribute the weights sit under (``G_ema.``, ``D.``).
        config_key: the config node ``net`` was built from (for the message).
        where: ``key=path`` of the checkpoint (for the message).
        missing: the error raised when no weight has the prefix (None: return False).
    """
    weights = {name[len(prefix):]: tensor for name, tensor in state_dict.items()
               if name.startswith(prefix)}
    if not weights:
        if missing is None:
            return False
        raise missing(f"{where}: the checkpoint holds no {prefix}* weights")
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        text = " ".join(str(err).split())[:300]
        raise ConfigError(f"{where}: {prefix.rstrip('.')} weights do not fit {config_key} of its "
                          f"config ({text})") from err
    return True


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
