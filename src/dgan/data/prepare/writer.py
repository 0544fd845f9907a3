"""Writing the zip: to a temporary file beside the destination, every image decoded again and
compared, then renamed over it; nothing half-written is ever left."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dgan.data.images import (
    IMAGE_READ_ERRORS,
    LABELS_FILE,
)
from dgan.data.prepare.lsun import LMDB_DATA_FILE
from dgan.data.prepare.source import _SOURCES_HINT, PrepareError, _Source

# Permissions of the new zip before the umask, as open() would give: mkstemp's 0600 would hide
# the dataset from the other users of a shared machine.
_NEW_FILE_MODE = 0o666


# Random bytes in the temporary file's name; O_EXCL refuses the (improbable) clash.
_TEMP_NAME_BYTES = 8


def _write_zip(dest: Path, source: _Source, max_images: int | None) -> tuple[int, int | None]:
    """Write ``source`` to ``dest`` atomically; return (images written, classes or None).

    The archive is built in a temporary file, read back and checked image by image
    (:func:`_verify_archive`), synced to disk and only then renamed over ``dest``.
    """
    tmp = _create_temp(dest)
    count = 0
    labels: list[list[Any]] = []
    written: dict[str, tuple[tuple[int, ...], str]] = {}
    expected_shape = (source.resolution, source.resolution) + (
        () if source.channels == 1 else (source.channels,)
    )
    try:
        # Stored, not deflated: PNGs are already compressed, and reading stays fast.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for array, label in itertools.islice(source.images, max_images):
                fname = f"{count // 1000:05d}/img{count:08d}.png"
                if array.shape != expected_shape or array.dtype != np.uint8:
                    raise PrepareError(
                        f"internal: image {count} is {array.dtype} {array.shape}, "
                        f"not uint8 {expected_shape}"
                    )
                zf.writestr(fname, _encode_png(array))
                written[fname] = (array.shape, _digest(array))
                if source.labelled:
                    labels.append([fname, label])
                count += 1
            if count == 0:
                raise PrepareError(f"the source has no images to write ({_SOURCES_HINT})")
            document: dict[str, Any] = {"labels": labels if source.labelled else None}
            if source.labelled and source.class_names:
                document["class_names"] = source.class_names
            zf.writestr(LABELS_FILE, json.dumps(document))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _verify_archive(tmp, written, dest)
        os.replace(tmp, dest)
        _fsync_folder(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    num_classes = None
    if source.labelled:
        if source.class_names:
            num_classes = len(source.class_names)
        elif labels and all(isinstance(lab, int) for _, lab in labels):
            num_classes = max(lab for _, lab in labels) + 1
        else:
            num_classes = len(labels[0][1]) if labels else 0
    return count, num_classes


def _check_dest_outside_source(source: Path, dest: Path) -> None:
    """The zip written is not the source itself, nor a file inside a source folder (the
    conversion would replace the images it reads, or read its own output)."""
    source_at, dest_at = source.resolve(), dest.resolve()
    if dest_at == source_at:
        raise PrepareError(f"--dest={dest} is the source itself; write the zip to another path")
    if source_at.name == LMDB_DATA_FILE:
        source_at = source_at.parent  # an LMDB export is read as its whole folder
    if source_at in dest_at.parents:
        raise PrepareError(f"--dest={dest} is inside --source={source}; write the zip outside "
                           "the source folder")


def _check_dest_folder(dest: Path) -> None:
    """The folder of ``dest`` exists or can be made, before any source is read."""
    from dgan.core.errors import ConfigError
    from dgan.files.writable import check_creatable_dir

    try:
        check_creatable_dir(dest.parent, "--dest")
    except ConfigError as err:
        reason = str(err).partition(": ")[2].partition(";")[0]
        raise PrepareError(f"--dest={dest}: cannot write in '{dest.parent}' ({reason}); choose a "
                           "writable folder") from None


def _create_temp(dest: Path) -> Path:
    """A new empty file beside ``dest``; one PrepareError line if that folder is not writable."""
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(_TEMP_NAME_BYTES)}.tmp"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # os.open applies the umask itself, as for any file the user creates.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PrepareError(
            f"--dest={dest}: cannot write in '{dest.parent}' ({reason}); choose a writable folder"
        ) from exc
    os.close(fd)
    return tmp


def _encode_png(array: np.ndarray) -> bytes:
    """``array`` (uint8 [H, W] grey or [H, W, 3] RGB) as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _digest(array: np.ndarray) -> str:
    """A fingerprint of ``array``'s pixels, kept instead of the pixels to compare them later."""
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).hexdigest()


def _verify_archive(
    tmp: Path, written: dict[str, tuple[tuple[int, ...], str]], dest: Path
) -> None:
    """Decode every image of the new archive ``tmp``; raise PrepareError unless each one gives
    exactly the pixels written (the entry CRCs are checked on the way)."""
    failed = f"nothing was written to {dest}; check the disk and run again"
    with zipfile.ZipFile(tmp) as zf:
        names = set(zf.namelist()) - {LABELS_FILE}
        if names != set(written):
            raise PrepareError(
                f"the new archive holds {len(names)} images, not the {len(written)} written; "
                f"{failed}"
            )
        for fname, (shape, digest) in written.items():
            try:
                with Image.open(io.BytesIO(zf.read(fname))) as image:
                    image.load()
                    decoded = np.asarray(image)
            except IMAGE_READ_ERRORS as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise PrepareError(
                    f"'{fname}' in the new archive does not decode ({reason}); {failed}"
                ) from exc
            if decoded.shape != shape or _digest(decoded) != digest:
                raise PrepareError(
                    f"'{fname}' in the new archive decodes to other pixels than were written; "
                    f"{failed}"
                )


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable: a crash right after it must not bring back the old zip."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Not every platform opens folders; the rename itself is still atomic.
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
