"""The one way dgan writes a file: into a temporary file beside it, then renamed over it.

Readers (a resumed run, a collaborator's viewer, a second rank) see the old file or the new one,
never a part. The result gets the permissions ``open()`` would give under the process umask
(0644 under umask 022): ``mkstemp`` creates 0600 files, which would hide sample grids and
checkpoints from collaborators on a shared cluster.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# Permissions of a new file before the umask, as open() uses.
NEW_FILE_MODE = 0o666


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block exits without error.

    For writers that need a file name (``torch.save`` to a path, ``shutil.copyfile``,
    Lightning's ``save_checkpoint``). The temporary file is removed if the block fails.

    Args:
        path: the file to write.
        suffix: suffix of the temporary file (``.part`` for downloads).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, NEW_FILE_MODE & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object],
                 suffix: str = ".tmp") -> Path:
    """Write ``path`` through ``write(file)`` atomically, flushed to disk before the rename.

    Args:
        path: the file to write.
        write: called with the open binary file.
        suffix: suffix of the temporary file.
    """
    with atomic_path(path, suffix) as tmp, tmp.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))
