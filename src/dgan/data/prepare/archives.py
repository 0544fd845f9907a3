"""Reading members of a tar.gz, a zip or an extracted folder alike, and the pickled arrays of
the CIFAR-10 batches without running code."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path
from typing import IO, Any

from dgan.data.prepare.source import PrepareError

# Files that mark an archive or folder as CIFAR-10's python batches or STL-10's binaries.
_CIFAR_MARKERS = ("data_batch_1", "test_batch")
_STL_MARKERS = ("train_X.bin", "test_X.bin", "unlabeled_X.bin")


class _Members:
    """Files of a tar archive or of its extracted folder, found by base name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._files: dict[str, Any] = {}
        if path.is_dir():
            for root, _, files in os.walk(path):
                for fname in files:
                    self._files.setdefault(fname, Path(root) / fname)
        else:
            try:
                self._tar = tarfile.open(path)
                for member in self._tar.getmembers():
                    if member.isfile():
                        self._files.setdefault(os.path.basename(member.name), member)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise PrepareError(f"corrupt archive '{path}': {exc}") from exc

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def require(self, name: str, what: str) -> None:
        """Raise PrepareError naming ``name`` if the archive lacks it."""
        if name not in self._files:
            raise PrepareError(f"'{self.path}' has no '{name}' ({what}); is it the right archive?")

    def size(self, name: str) -> int:
        """Size of ``name`` in bytes."""
        entry = self._files[name]
        return entry.size if isinstance(entry, tarfile.TarInfo) else entry.stat().st_size

    def open(self, name: str) -> IO[bytes]:
        """Binary file object for ``name``."""
        entry = self._files[name]
        if self._tar is None:
            return open(entry, "rb")
        f = self._tar.extractfile(entry)
        assert f is not None
        return f

    def read(self, name: str) -> bytes:
        """Whole content of ``name``."""
        with self.open(name) as f:
            return f.read()

    def close(self) -> None:
        """Close the tar archive."""
        if self._tar is not None:
            self._tar.close()


def _is_archive_folder(path: Path) -> bool:
    markers = _CIFAR_MARKERS + _STL_MARKERS
    candidates = [path, *(p for p in path.iterdir() if p.is_dir())]
    return any((c / m).is_file() for c in candidates for m in markers)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 batches that builds NumPy arrays and refuses anything else.

    The batches are pickles, and an arbitrary pickle can run code; these hold only dicts, lists,
    strings and arrays, so nothing else needs to be loadable.
    """

    _ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # Python 3 writes bytes into protocol-2 pickles through _codecs.encode (text -> bytes).
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not an array")


def _unpickle(members: _Members, name: str) -> dict[Any, Any]:
    try:
        with members.open(name) as f:
            # The batches were pickled by Python 2: 'bytes' keeps their str objects loadable.
            document = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as exc:
        raise PrepareError(f"'{name}' in '{members.path}' is not a CIFAR-10 batch: {exc}") from exc
    if not isinstance(document, dict):
        raise PrepareError(f"'{name}' in '{members.path}' is not a CIFAR-10 batch (not a dict)")
    return document


def _key(document: dict[Any, Any], key: str, where: str) -> Any:
    for k in (key.encode(), key):
        if k in document:
            return document[k]
    raise PrepareError(f"{where}: missing key '{key}'")
