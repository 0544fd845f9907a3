"""The 13 networks the Diffusion-GAN authors publish, by name, through the Hugging Face hub.

Wherever a command takes a network pickle (``pkl=`` of generate and evaluate, ``init=`` of
train, the source of ``python -m dgan.convert``) it also takes the file name of a published
network without ``.pkl``, e.g. ``pkl=diffusion-projectedgan-lsun-bedroom``. The file
``checkpoints/<name>.pkl`` of the hub repository ``zhendongw/diffusion-gan`` is downloaded once
into the Hugging Face cache and read from there afterwards, without asking the hub again (the
published files do not change). The cache is ``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``; ``HF_HUB_OFFLINE=1`` reads the cache only.
Both are read when a name is resolved (not when the library is imported), so they can be set
by the caller of a command's ``main`` too.

A name that is not one of the 13 is refused with the 13 listed; a network that is not in the
cache when the hub cannot be asked (offline, or no connection) is refused in one line naming
the repository, the file and how to place it by hand.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from dgan.core.errors import ConfigError
from dgan.core.messages import closest_first

__all__ = [
    "HUB_REPO",
    "PUBLISHED_NETWORKS",
    "hub_cache_dir",
    "hub_filename",
    "is_bare_name",
    "published_network",
    "resolve_network",
]

HUB_REPO = "zhendongw/diffusion-gan"
HUB_FOLDER = "checkpoints"
HUB_URL = "https://huggingface.co"
PICKLE_SUFFIX = ".pkl"
# The file names of the authors' README (Diffusion-StyleGAN2, -ProjectedGAN, -InsGen).
PUBLISHED_NETWORKS = (
    "diffusion-stylegan2-cifar10",
    "diffusion-stylegan2-celeba64",
    "diffusion-stylegan2-stl10",
    "diffusion-stylegan2-lsun-bedroom",
    "diffusion-stylegan2-lsun-church",
    "diffusion-stylegan2-ffhq",
    "diffusion-projectedgan-cifar10",
    "diffusion-projectedgan-stl10",
    "diffusion-projectedgan-lsun-bedroom",
    "diffusion-projectedgan-lsun-church",
    "diffusion-insgen-afhqcat",
    "diffusion-insgen-afhqdog",
    "diffusion-insgen-afhqwild",
)
# huggingface_hub's environment variables, read at call time (the library reads them at import).
OFFLINE_ENV = "HF_HUB_OFFLINE"
CACHE_ENV = "HF_HUB_CACHE"
HOME_ENV = "HF_HOME"
HOME_CACHE_FOLDER = "hub"
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
HUB_LOGGER = "huggingface_hub"
# Characters of the hub's own error message kept in the one-line error (its HTTP errors can
# carry a long server response).
HUB_ERROR_CHARS = 200


def hub_filename(name: str) -> str:
    """Path of a published network's pickle inside the hub repository."""
    return f"{HUB_FOLDER}/{name}{PICKLE_SUFFIX}"


def hub_cache_dir() -> Path | None:
    """The Hugging Face cache to use now: ``HF_HUB_CACHE``, ``HF_HOME/hub``, or None (the
    library's default)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.path.expandvars(os.environ[CACHE_ENV])).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.path.expandvars(os.environ[HOME_ENV])).expanduser() / HOME_CACHE_FOLDER
    return None


def _offline() -> bool:
    from huggingface_hub import constants

    return os.environ.get(OFFLINE_ENV, "").upper() in TRUE_VALUES or bool(constants.HF_HUB_OFFLINE)


def _cache_shown() -> str:
    cache = hub_cache_dir()
    if cache is not None:
        return str(cache)
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_bare_name(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is meant as a network's name: no file or folder of that name, no folder
    part and no suffix (``diffusion-stylegan2-cifar10``, not ``nets/x.pkl``)."""
    path = Path(text)
    return not path.exists() and path.parent == Path(".") and path.suffix == "" and bool(path.name)


def published_network(name: str, key: str) -> Path:
    """The local file of the published network ``name``, downloaded into the cache if needed.

    Args:
        name: one of :data:`PUBLISHED_NETWORKS`.
        key: the argument it was given as (``pkl``, ``init``, ``SRC``), for messages.

    Raises:
        ConfigError: an unknown name (the 13 listed), or the file is not in the cache and the
            hub cannot give it (the repository, the file and the manual way named).
    """
    if name not in PUBLISHED_NETWORKS:
        raise ConfigError(
            f"{key}={name}: no such file, nor one of the {len(PUBLISHED_NETWORKS)} published "
            f"networks: {', '.join(closest_first(name, PUBLISHED_NETWORKS))}")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    filename, cache, offline = hub_filename(name), hub_cache_dir(), _offline()
    by_hand = (f"fetch it where there is network access with `hf download {HUB_REPO} {filename}` "
               f"and copy the cache over (or point {CACHE_ENV} at it), or download "
               f"{HUB_URL}/{HUB_REPO}/resolve/main/{filename} and give its path: "
               f"{key}=PATH/{name}{PICKLE_SUFFIX}")
    try:
        # The cache first, without asking the hub: the published files do not change.
        return Path(hf_hub_download(HUB_REPO, filename, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        if offline:
            raise ConfigError(f"{key}={name}: {filename} of {HUB_REPO} is not in the Hugging "
                              f"Face cache {_cache_shown()} and {OFFLINE_ENV} is set; {by_hand}"
                              ) from None
    print(f"[dgan] {key}={name}: downloading {filename} of {HUB_REPO} into the Hugging Face "
          f"cache {_cache_shown()} (once)", flush=True)
    try:
        with _hub_warnings_off():
            local = hf_hub_download(HUB_REPO, filename, cache_dir=cache)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ConfigError(f"{key}={name}: {filename} of {HUB_REPO} is not in the Hugging Face "
                          f"cache {_cache_shown()} and the hub cannot be reached; {by_hand}"
                          ) from None
    except HfHubHTTPError as err:
        text = " ".join(str(err).split())[:HUB_ERROR_CHARS]
        raise ConfigError(f"{key}={name}: the hub did not give {filename} of {HUB_REPO} "
                          f"({text}); {by_hand}") from None
    return Path(local)


@contextlib.contextmanager
def _hub_warnings_off() -> Iterator[None]:
    """huggingface_hub's log warnings off (its retry lines when the hub cannot be reached: the
    failure is said in one line after them); its progress bar stays."""
    hub_logger = logging.getLogger(HUB_LOGGER)
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def resolve_network(path: str | os.PathLike[str], key: str) -> Path:
    """``path`` itself, or for a bare name the published network's file (see
    :func:`published_network`); a path that does not exist is returned for the caller to refuse.

    Args:
        path: a pickle's path, or a published network's name.
        key: the argument it was given as, for messages.
    """
    if is_bare_name(path):
        return published_network(str(path), key)
    return Path(path)
