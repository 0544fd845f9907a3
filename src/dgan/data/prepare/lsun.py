"""An LMDB export of LSUN: every value an encoded image, read in key order."""

from __future__ import annotations

import io
import itertools
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dgan.data.images import (
    IMAGE_READ_ERRORS,
    DatasetError,
    image_to_uint8,
)
from dgan.data.prepare.source import PrepareError, _Skipped, _Source
from dgan.data.prepare.transforms import _TOO_SMALL, _UNDECODABLE, _check_crop_height, _fit

# LSUN's exports are scaled to 256 px on the short side, the resolution the paper trains at.
LMDB_DEFAULT_RESOLUTION = 256


LMDB_DATA_FILE = "data.mdb"


# How LSUN names its exports, and how the reference dataset tool recognises them.
_LMDB_SUFFIX = "_lmdb"


_LMDB_INSTALL_HINT = "pip install lmdb (or pip install 'dgan[lsun]')"


def _is_lmdb_folder(path: Path) -> bool:
    return path.is_dir() and (path / LMDB_DATA_FILE).is_file()


def _zipped_lmdb(path: Path) -> str | None:
    """The data.mdb inside the zip ``path`` (LSUN's downloads are zipped LMDB folders), if any."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    return next((n for n in names if os.path.basename(n) == LMDB_DATA_FILE), None)


def _open_lmdb(path: Path) -> Any:
    """A read-only LMDB environment on the export folder ``path``; PrepareError if it is not one."""
    try:
        import lmdb
    except ImportError:
        raise PrepareError(
            f"--source={path} is an LMDB export; reading it needs the lmdb package: "
            f"{_LMDB_INSTALL_HINT}"
        ) from None
    try:
        # lock=False: the export is only read, and its folder may be read-only.
        return lmdb.open(os.fspath(path), readonly=True, lock=False, subdir=True)
    except lmdb.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PrepareError(
            f"--source={path}: '{path / LMDB_DATA_FILE}' is not a readable LMDB database "
            f"({reason}); expected an LMDB export such as LSUN's bedroom_train_lmdb"
        ) from exc


def _decode(value: bytes, where: str) -> np.ndarray:
    """The encoded image ``value`` as uint8 RGB [H, W, 3]; ImageFileError or a PIL error if not."""
    with Image.open(io.BytesIO(value)) as image:
        image.load()
        # The reference decodes into colour whatever the file holds; so does this.
        return image_to_uint8(image, 3, where, where)


def _lmdb_source(
    path: Path,
    resolution: int | None,
    transform: str,
    crop_height: int | None,
    max_images: int | None,
) -> _Source:
    target = resolution or LMDB_DEFAULT_RESOLUTION
    _check_crop_height(crop_height, target)
    env = _open_lmdb(path)
    try:
        entries = env.stat()["entries"]
    except BaseException:
        env.close()
        raise
    if entries == 0:
        env.close()
        raise PrepareError(f"--source={path}: the LMDB database holds no entries")
    skipped = _Skipped()

    def images() -> Iterator[tuple[np.ndarray, Any]]:
        try:
            with env.begin(write=False, buffers=False) as txn:
                cursor = itertools.islice(txn.cursor(), max_images)
                for key, value in cursor:
                    name = key.decode("utf-8", errors="replace")
                    where = f"entry '{name}'"
                    try:
                        array = _decode(value, where)
                    except (*IMAGE_READ_ERRORS, DatasetError) as exc:
                        reason = " ".join(str(exc).split()) or type(exc).__name__
                        skipped.add(_UNDECODABLE, f"{where} ({reason})")
                        continue
                    fitted = _fit(Image.fromarray(array), target, transform, crop_height)
                    if fitted is None:
                        skipped.add(_TOO_SMALL, f"{where} ({array.shape[1]}x{array.shape[0]})")
                        continue
                    yield np.asarray(fitted), None
        finally:
            env.close()

    return _Source("lmdb", target, 3, False, images(), None, skipped)
