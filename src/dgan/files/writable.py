"""Output paths checked before any work: a directory that cannot be written is one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dgan.core.errors import ConfigError


def nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_creatable_dir(path: str | os.PathLike[str], key: str) -> None:
    """``path`` is a directory, or one that can be made: its nearest existing ancestor is a
    writable directory. Creates nothing (Hydra makes the run directory itself).

    Args:
        path: the directory a command will write into.
        key: the setting that names it, for the error message.
    """
    base = nearest_existing(Path(path))
    if not base.is_dir():
        raise ConfigError(f"{key}={path}: cannot be a directory, {base} is a file; "
                          "choose another directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path}: {base} is not writable; choose a directory you can "
                          "write to")
    if base != Path(os.path.abspath(path)):
        # Permissions do not tell everything (/proc, read-only mounts, root): make a directory
        # there and remove it again.
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".dgan-probe-", dir=base))
        except OSError as err:
            raise ConfigError(f"{key}={path}: cannot make a directory in {base} "
                              f"({err.strerror or err}); choose a directory you can write "
                              "to") from None


def check_writable_dir(path: str | os.PathLike[str], key: str) -> None:
    """Make ``path`` and write a probe file in it: permissions, read-only file systems and
    full quotas all show here, before the run starts.

    Args:
        path: the directory to write into.
        key: the setting that names it, for the error message.
    """
    path = Path(path)
    check_creatable_dir(path, key)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ConfigError(f"{key}={path}: cannot write there ({err.strerror or err}); "
                          "choose a directory you can write to") from err
