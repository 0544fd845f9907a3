"""Reading a dgan checkpoint file: the run config and the weights, checked, nothing run.

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

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgan.config.stored_config import check_stored_config
from dgan.core.errors import ConfigError

G_EMA_PREFIX = "G_ema."
D_PREFIX = "D."
# The diffusion's current chain length, a buffer of the module's diffusion.
DIFFUSION_T_KEY = "diffusion.T"
PICKLE_SUFFIX = ".pkl"


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


