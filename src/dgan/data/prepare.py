"""Convert image sources into the zip layout that :class:`dgan.data.images.ImageDataset` reads.

    python -m dgan.data.prepare --source=SRC --dest=DEST.zip [--resolution=N]
        [--transform=center-crop|center-crop-wide|resize] [--crop-height=N] [--max-images=N]
        [--split=...] [--labels-from-folders]

Sources:

- a folder (searched recursively) or zip of images: each image is center-cropped to a square
  (or, with ``--transform=resize``, stretched) and resized to ``--resolution`` (default: the
  largest power of two that every image reaches). Labels come from a ``dataset.json`` in the
  source, or with ``--labels-from-folders`` from the top-level subfolder names (sorted: the first
  folder is class 0).
- ``cifar-10-python.tar.gz`` (or its extracted ``cifar-10-batches-py`` folder): the five training
  batches, or the test batch with ``--split=test``; 32 px unless ``--resolution`` says otherwise.
- ``stl10_binary.tar.gz`` (or its extracted ``stl10_binary`` folder): ``--split=unlabeled``
  (default, the 100,000 images GAN papers train on), ``train`` or ``test`` (with labels, 1..10
  stored, 0..9 written) or ``train+unlabeled``; resized from 96 px to ``--resolution`` (default 64).
- ``digits``: scikit-learn's embedded 8x8 digits, upscaled to ``--resolution`` (default 32).
- an LMDB export of LSUN (``bedroom_train_lmdb``, ``church_outdoor_train_lmdb``, ...: a folder
  holding ``data.mdb``; needs the ``lmdb`` package): every value is an encoded image (webp, jpeg,
  png), read in key order, made square by ``--transform`` at ``--resolution`` (default 256, the
  short side of LSUN's images), always RGB; no labels. Values that do not decode are skipped, as
  in the reference's dataset tool, and counted in the summary line.

``--transform=center-crop-wide`` (folders and LMDB) is the reference dataset tool's wide crop: a
horizontal band of ``round(resolution * h / w)`` source rows over the full width is resized to
``resolution`` x ``--crop-height`` (default: the resolution) and centred on a black square.
Images narrower than the resolution, or whose band is shorter than ``--crop-height``, are
skipped and counted; with the default height that is every image wider than it is tall, as with
the reference's ``--width=256 --height=256``.

The output is the StyleGAN2-ADA layout: ``00000/img00000000.png``, ... and ``dataset.json`` with
``{"labels": [[name, class], ...]}`` (or null). ``--max-images`` reads only the first N images
(or LMDB entries) in source order, as the reference's option does: any of those skipped are
counted in the summary and not replaced, so fewer than N may be written.

Every source image is checked (PIL's integrity check) and fully decoded before it is written, so
a truncated or damaged file stops the run with one line naming it; its mode is converted to 8
bits as the dataset reads it (:func:`dgan.data.images.image_to_uint8`: 16-bit and float images
are scaled, not clipped) before any crop or resize. The zip is written to a temporary file next
to ``--dest``, then every image in it is decoded again and compared with what was meant to be
written, and only then is it renamed over ``--dest``: a failed or interrupted run never leaves a
half-written dataset behind, and an existing ``--dest`` stays as it was. The new file gets the
usual permissions (0666 less the umask, like any file the user creates).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import os
import pickle
import secrets
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from dgan.data.images import (
    IMAGE_READ_ERRORS,
    LABELS_FILE,
    MIN_RESOLUTION,
    DatasetError,
    FileStore,
    check_image_mode,
    image_channels,
    image_to_uint8,
    is_power_of_two,
    parse_labels,
)

# The largest side prepare writes (the largest StyleGAN2 preset, FFHQ-1024).
MAX_RESOLUTION = 1024
# to_square's two; center-crop-wide (center_crop_wide) may drop an image, so it is apart.
SQUARE_TRANSFORMS = ("center-crop", "resize")
WIDE_TRANSFORM = "center-crop-wide"
TRANSFORMS = (*SQUARE_TRANSFORMS, WIDE_TRANSFORM)
SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
CIFAR_SIDE = 32
STL_SIDE = 96
STL_DEFAULT_RESOLUTION = 64
DIGITS_DEFAULT_RESOLUTION = 32
# LSUN's exports are scaled to 256 px on the short side, the resolution the paper trains at.
LMDB_DEFAULT_RESOLUTION = 256
LMDB_DATA_FILE = "data.mdb"
# How LSUN names its exports, and how the reference dataset tool recognises them.
_LMDB_SUFFIX = "_lmdb"
_LMDB_INSTALL_HINT = "pip install lmdb (or pip install 'dgan[lsun]')"
_UNDECODABLE = "undecodable"
_TOO_SMALL = f"too small for {WIDE_TRANSFORM}"
_STL_BYTES = 3 * STL_SIDE * STL_SIDE
_CIFAR_MARKERS = ("data_batch_1", "test_batch")
_STL_MARKERS = ("train_X.bin", "test_X.bin", "unlabeled_X.bin")
# Permissions of the new zip before the umask, as open() would give: mkstemp's 0600 would hide
# the dataset from the other users of a shared machine.
_NEW_FILE_MODE = 0o666
# Random bytes in the temporary file's name; O_EXCL refuses the (improbable) clash.
_TEMP_NAME_BYTES = 8
_SOURCES_HINT = (
    "expected an image folder, a zip of images, cifar-10-python.tar.gz, stl10_binary.tar.gz "
    "(or their extracted folders), an LMDB export folder holding data.mdb, or 'digits'"
)


class PrepareError(ValueError):
    """A source or option that cannot be converted; the message says what would work."""


@dataclass
class _Skipped:
    """Source entries left out while converting, by reason, the first of each named."""

    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        """Count one entry left out for ``reason``; ``where`` names it (and why, if useful)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.first.setdefault(reason, where)

    def summary(self) -> tuple[tuple[str, int, str], ...]:
        """(reason, count, first entry) for each reason, in the order they were first met."""
        return tuple((r, n, self.first[r]) for r, n in self.counts.items())


@dataclass
class _Source:
    """Images to write, produced lazily so that large archives stream through memory."""

    kind: str
    resolution: int
    channels: int
    labelled: bool
    images: Iterator[tuple[np.ndarray, Any]]
    class_names: list[str] | None = None
    # Filled while ``images`` is consumed.
    skipped: _Skipped = field(default_factory=_Skipped)


@dataclass(frozen=True)
class PrepareSummary:
    """What a conversion wrote."""

    dest: Path
    kind: str
    count: int
    resolution: int
    channels: int
    num_classes: int | None
    # (reason, count, first entry) for the source entries left out.
    skipped: tuple[tuple[str, int, str], ...] = ()

    def line(self) -> str:
        """One line for the terminal."""
        labels = "no labels" if self.num_classes is None else f"labels: {self.num_classes} classes"
        skipped = "".join(
            f"; skipped {n} {reason}, first {first}" for reason, n, first in self.skipped
        )
        return (
            f"wrote {self.count} images ({self.kind}) {self.resolution}x{self.resolution}, "
            f"{self.channels} channel{'s' if self.channels > 1 else ''}, {labels} -> {self.dest}"
            f"{skipped}"
        )


def to_square(image: Image.Image, resolution: int, transform: str = "center-crop") -> Image.Image:
    """``image`` made square (central crop, or a stretch for ``resize``) at ``resolution``."""
    if transform not in SQUARE_TRANSFORMS:
        raise PrepareError(
            f"to_square: transform {transform!r} is not one of {', '.join(SQUARE_TRANSFORMS)} "
            f"({WIDE_TRANSFORM} is center_crop_wide, which may drop an image)"
        )
    width, height = image.size
    if transform == "center-crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (resolution, resolution):
        # Lanczos, as StyleGAN2-ADA's dataset tool, so statistics match datasets made there.
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return image


def center_crop_wide(image: Image.Image, width: int, height: int) -> Image.Image | None:
    """The reference dataset tool's wide crop of ``image`` onto a black ``width`` square, or None.

    A band of ``round(width * h / w)`` rows (full width) is cut from the middle of the ``w`` x
    ``h`` source, resized to ``width`` x ``height`` and centred vertically on the square. The
    band's height is computed from the output width, as the reference does: the crop has the
    aspect ``width:height`` only for a source exactly ``width`` wide, and it is kept that way so
    that datasets equal the authors'. Images narrower than ``width``, or whose band is shorter
    than ``height``, are dropped (None), as there.
    """
    if not 0 < height <= width:
        raise PrepareError(f"--crop-height={height} must be in [1, {width}] (the resolution)")
    src_width, src_height = image.size
    band = round(width * src_height / src_width)
    if src_width < width or band < height:
        return None
    top = (src_height - band) // 2
    band_image = image.crop((0, top, src_width, top + band))
    if band_image.size != (width, height):
        band_image = band_image.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(band_image)
    canvas = np.zeros((width, *pixels.shape[1:]), dtype=np.uint8)
    offset = (width - height) // 2
    canvas[offset : offset + height] = pixels
    return Image.fromarray(canvas)


def _fit(
    image: Image.Image, resolution: int, transform: str, crop_height: int | None
) -> Image.Image | None:
    """``image`` at ``resolution`` by ``transform``; None where center-crop-wide drops it."""
    if transform == WIDE_TRANSFORM:
        return center_crop_wide(image, resolution, crop_height or resolution)
    return to_square(image, resolution, transform)


def _check_crop_height(crop_height: int | None, resolution: int) -> None:
    if crop_height is not None and crop_height > resolution:
        raise PrepareError(
            f"--crop-height={crop_height} is taller than --resolution={resolution}; the band "
            "must fit in the square: use a height up to the resolution"
        )


def _resized(array: np.ndarray, resolution: int) -> np.ndarray:
    if array.shape[0] == resolution and array.shape[1] == resolution:
        return array
    return np.asarray(to_square(Image.fromarray(array), resolution, "resize"))


# ---------------------------------------------------------------------------- image folders


def _folder_source(
    store: FileStore,
    resolution: int | None,
    transform: str,
    labels_from_folders: bool,
    max_images: int | None,
    crop_height: int | None = None,
) -> _Source:
    names = store.image_names()
    if not names:
        raise PrepareError(f"no images found in '{store.path}' ({_SOURCES_HINT})")
    all_names = names
    # Only the images that will be written are checked and sized.
    names = names[:max_images]
    headers = [store.read_header(n) for n in names]
    for name, (_, mode) in zip(names, headers, strict=True):
        # An unsupported mode is refused now, before a single image is converted.
        check_image_mode(mode, name, store.where(name))
    channels = max(image_channels(mode) for _, mode in headers)
    smallest = min(min(size) for size, _ in headers)
    if resolution is None:
        resolution = 1 << (smallest.bit_length() - 1)
        if resolution < MIN_RESOLUTION:
            small = names[[min(size) for size, _ in headers].index(smallest)]
            raise PrepareError(
                f"{store.where(small)} is only {smallest} px on its short side; images must reach "
                f"{MIN_RESOLUTION} px, or pass --resolution to upscale"
            )

    labels: list[Any] | None = None
    class_names: list[str] | None = None
    if labels_from_folders:
        root_level = [n for n in names if "/" not in n]
        if root_level:
            raise PrepareError(
                f"--labels-from-folders: {store.where(root_level[0])} is not inside a class "
                "subfolder; put every image in SRC/<class name>/..."
            )
        class_names = sorted({n.split("/", 1)[0] for n in names})
        index = {c: k for k, c in enumerate(class_names)}
        labels = [index[n.split("/", 1)[0]] for n in names]
    elif LABELS_FILE in store:
        where = f"{store.path}/{LABELS_FILE}"
        try:
            document = json.loads(store.read_bytes(LABELS_FILE).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PrepareError(f"{where}: not valid JSON ({exc})") from exc
        # Validated against every image, so a subset never hides a broken dataset.json.
        parsed = parse_labels(document, all_names, where)
        labels = None if parsed is None else parsed[: len(names)].tolist()
        if isinstance(document, dict) and isinstance(document.get("class_names"), list):
            class_names = [str(c) for c in document["class_names"]]

    _check_crop_height(crop_height, resolution)
    target = resolution
    skipped = _Skipped()

    def images() -> Iterator[tuple[np.ndarray, Any]]:
        for k, name in enumerate(names):
            # Camera JPEGs store their rotation in EXIF; apply it so faces are not sideways.
            image = ImageOps.exif_transpose(store.read_image(name, verify=True))
            # 8 bits first, then crop and resize: a 16-bit image and its 8-bit version (values
            # 257 times smaller) then give the same output, and Lanczos always sees L or RGB.
            array = image_to_uint8(image, channels, name, store.where(name))
            eight_bit = Image.fromarray(array[:, :, 0] if channels == 1 else array)
            fitted = _fit(eight_bit, target, transform, crop_height)
            if fitted is None:
                size = f"{eight_bit.width}x{eight_bit.height}"
                skipped.add(_TOO_SMALL, f"{store.where(name)} ({size})")
                continue
            yield np.asarray(fitted), (None if labels is None else labels[k])

    return _Source(
        "images", resolution, channels, labels is not None, images(), class_names, skipped
    )


# ---------------------------------------------------------------------------- archives


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


def _cifar_source(members: _Members, split: str | None, resolution: int | None) -> _Source:
    split = split or "train"
    if split not in ("train", "test"):
        raise PrepareError(f"--split={split} is not a CIFAR-10 split; use train or test")
    batches = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    for name in batches:
        members.require(name, f"CIFAR-10 {split} batch")
    class_names = None
    if "batches.meta" in members:
        meta = _unpickle(members, "batches.meta")
        raw_names = _key(meta, "label_names", f"'batches.meta' in '{members.path}'")
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw_names]
    target = resolution or CIFAR_SIDE

    def images() -> Iterator[tuple[np.ndarray, Any]]:
        for name in batches:
            where = f"'{name}' in '{members.path}'"
            batch = _unpickle(members, name)
            data = np.asarray(_key(batch, "data", where), dtype=np.uint8)
            labels = list(_key(batch, "labels", where))
            if data.ndim != 2 or data.shape[1] != 3 * CIFAR_SIDE * CIFAR_SIDE:
                raise PrepareError(f"{where}: 'data' has shape {data.shape}, expected [N, 3072]")
            if len(labels) != len(data):
                raise PrepareError(
                    f"{where}: {len(labels)} labels for {len(data)} images; the counts must match"
                )
            # Rows are 1024 red, then green, then blue values, each plane row-major.
            pixels = data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
            for image, label in zip(pixels, labels, strict=True):
                yield _resized(np.ascontiguousarray(image), target), int(label)

    return _Source("cifar10", target, 3, True, images(), class_names)


def _stl_source(members: _Members, split: str | None, resolution: int | None) -> _Source:
    split = split or "unlabeled"
    parts = {
        "train": [("train_X.bin", "train_y.bin")],
        "test": [("test_X.bin", "test_y.bin")],
        "unlabeled": [("unlabeled_X.bin", None)],
        "train+unlabeled": [("train_X.bin", None), ("unlabeled_X.bin", None)],
    }[split]
    labelled = split in ("train", "test")
    plans: list[tuple[str, np.ndarray | None]] = []
    for x_name, y_name in parts:
        members.require(x_name, f"STL-10 {split} images")
        size = members.size(x_name)
        if size % _STL_BYTES:
            raise PrepareError(
                f"'{x_name}' in '{members.path}' is {size} bytes, not a multiple of one "
                f"{STL_SIDE}x{STL_SIDE}x3 image ({_STL_BYTES} bytes): truncated?"
            )
        labels = None
        if y_name is not None:
            members.require(y_name, f"STL-10 {split} labels")
            labels = np.frombuffer(members.read(y_name), dtype=np.uint8).astype(np.int64) - 1
            if len(labels) != size // _STL_BYTES:
                raise PrepareError(
                    f"'{y_name}' has {len(labels)} labels but '{x_name}' has "
                    f"{size // _STL_BYTES} images in '{members.path}'; the counts must match"
                )
            if labels.size and (labels.min() < 0 or labels.max() > 9):
                raise PrepareError(f"'{y_name}' in '{members.path}': labels must be 1..10")
        plans.append((x_name, labels))
    class_names = None
    if labelled and "class_names.txt" in members:
        text = members.read("class_names.txt").decode("utf-8", errors="replace")
        class_names = [line.strip() for line in text.splitlines() if line.strip()] or None
    target = resolution or STL_DEFAULT_RESOLUTION

    def images() -> Iterator[tuple[np.ndarray, Any]]:
        for x_name, labels in plans:
            k = 0
            with members.open(x_name) as f:
                # 256 images (7 MB) at a time: unlabeled_X.bin alone is 2.7 GB.
                while chunk := f.read(_STL_BYTES * 256):
                    # Each plane is stored column-major: index [c, x, y] -> [y, x, c].
                    block = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, 3, STL_SIDE, STL_SIDE)
                    for image in block.transpose(0, 3, 2, 1):
                        label = None if labels is None else int(labels[k])
                        k += 1
                        yield _resized(np.ascontiguousarray(image), target), label

    return _Source("stl10", target, 3, labelled, images(), class_names)


def _digits_source(resolution: int | None) -> _Source:
    from dgan.data.digits import DigitsDataset

    dataset = DigitsDataset(resolution=resolution or DIGITS_DEFAULT_RESOLUTION)

    def images() -> Iterator[tuple[np.ndarray, Any]]:
        for i in range(dataset.raw_size):
            yield dataset.get_uint8(i).numpy()[0], dataset.class_of(i)

    names = [str(d) for d in range(10)]
    return _Source("digits", dataset.resolution, 1, True, images(), names)


# ---------------------------------------------------------------------------- LMDB (LSUN)


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


# ---------------------------------------------------------------------------- writing


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


def prepare(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    resolution: int | None = None,
    transform: str = "center-crop",
    max_images: int | None = None,
    labels_from_folders: bool = False,
    split: str | None = None,
    crop_height: int | None = None,
) -> PrepareSummary:
    """Convert ``source`` into the zip ``dest`` and say what was written.

    Args:
        source: image folder or zip, CIFAR-10 / STL-10 archive or extracted folder, LMDB
            export folder (LSUN), or "digits".
        dest: the .zip to write (replaced atomically if it exists).
        resolution: output side, a power of two (default: per source, see the module doc).
        transform: how folder and LMDB images become square: "center-crop", "center-crop-wide"
            or "resize".
        max_images: read only this many images (LMDB: entries), the first ones in source order.
        labels_from_folders: label folder images by their top-level subfolder.
        split: which part of CIFAR-10 (train, test) or STL-10 (unlabeled, train, test,
            train+unlabeled) to convert.
        crop_height: with "center-crop-wide", the height of the band in the square (default:
            the resolution).
    """
    dest = Path(dest).expanduser()
    if dest.suffix.lower() != ".zip":
        raise PrepareError(f"--dest={dest} must end in .zip")
    if dest.is_dir():
        raise PrepareError(f"--dest={dest} is a folder; name the .zip file to write")
    _check_dest_folder(dest)
    if resolution is not None and (not is_power_of_two(resolution) or resolution < MIN_RESOLUTION
                                   or resolution > MAX_RESOLUTION):
        raise PrepareError(f"--resolution={resolution} is not valid; expected a power of two in "
                           f"[{MIN_RESOLUTION}, {MAX_RESOLUTION}] (4, 8, ..., 1024)")
    if transform not in TRANSFORMS:
        raise PrepareError(f"--transform={transform} is unknown; use {' or '.join(TRANSFORMS)}")
    if crop_height is not None:
        if transform != WIDE_TRANSFORM:
            raise PrepareError(
                f"--crop-height={crop_height} applies to --transform={WIDE_TRANSFORM} only"
            )
        if crop_height < 1:
            raise PrepareError(f"--crop-height={crop_height} must be at least 1")
        if resolution is not None:
            _check_crop_height(crop_height, resolution)
    if max_images is not None and max_images < 1:
        raise PrepareError(f"--max-images={max_images} must be at least 1")
    if split is not None and split not in SPLITS:
        raise PrepareError(f"--split={split} is unknown; use one of {', '.join(SPLITS)}")

    raw = os.fspath(source)
    path = Path(raw).expanduser()
    if raw != "digits" and path.exists():
        _check_dest_outside_source(path, dest)
    members: _Members | None = None
    if raw == "digits":
        # The literal word selects the embedded digits; a folder of that name is "./digits".
        built = _digits_source(resolution)
    elif not path.exists():
        raise PrepareError(f"--source={raw} does not exist; {_SOURCES_HINT}")
    elif _is_lmdb_folder(path) or path.name == LMDB_DATA_FILE:
        folder = path if path.is_dir() else path.parent
        built = _lmdb_source(folder, resolution, transform, crop_height, max_images)
    elif path.is_dir() and path.name.endswith(_LMDB_SUFFIX):
        raise PrepareError(
            f"--source={raw} is named like an LMDB export but holds no {LMDB_DATA_FILE}; "
            f"LSUN's exports are folders holding {LMDB_DATA_FILE} and lock.mdb"
        )
    elif zipfile.is_zipfile(path) and (inner := _zipped_lmdb(path)) is not None:
        raise PrepareError(
            f"--source={raw} is a zipped LMDB export ('{inner}' inside); unzip it and pass the "
            f"folder holding {LMDB_DATA_FILE}"
        )
    elif (path.is_dir() and not _is_archive_folder(path)) or zipfile.is_zipfile(path):
        built = _folder_source(
            FileStore(path), resolution, transform, labels_from_folders, max_images, crop_height
        )
    elif path.is_dir() or tarfile.is_tarfile(path):
        members = _Members(path)
        try:
            if any(m in members for m in _CIFAR_MARKERS):
                built = _cifar_source(members, split, resolution)
            elif any(m in members for m in _STL_MARKERS):
                built = _stl_source(members, split, resolution)
            else:
                raise PrepareError(f"--source={raw}: unrecognised archive; {_SOURCES_HINT}")
        except BaseException:
            members.close()
            raise
    else:
        raise PrepareError(f"--source={raw} is not a folder, zip or tar archive; {_SOURCES_HINT}")

    if labels_from_folders and built.kind != "images":
        _close(built)
        raise PrepareError("--labels-from-folders applies to image folders only")
    if transform == WIDE_TRANSFORM and built.kind not in ("images", "lmdb"):
        _close(built)
        raise PrepareError(
            f"--transform={WIDE_TRANSFORM} applies to image folders and LMDB exports only"
        )
    if split is not None and built.kind not in ("cifar10", "stl10"):
        _close(built)
        raise PrepareError(f"--split={split} applies to CIFAR-10 and STL-10 archives only")
    try:
        count, num_classes = _write_zip(dest, built, max_images)
    finally:
        _close(built)
        if members is not None:
            members.close()
    return PrepareSummary(
        dest,
        built.kind,
        count,
        built.resolution,
        built.channels,
        num_classes,
        built.skipped.summary(),
    )


def _close(source: _Source) -> None:
    """Finish ``source``'s generator, so that what it holds open (an LMDB) is closed now."""
    close = getattr(source.images, "close", None)
    if close is not None:
        close()


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m dgan.data.prepare``."""
    from dgan.config.cli_args import OneLineParser

    def power_of_two(text: str) -> int:
        value = _int(text)
        if not is_power_of_two(value) or not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
            raise argparse.ArgumentTypeError(
                f"must be a power of two in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] (4, 8, ..., "
                f"1024), got {text}"
            )
        return value

    def positive(text: str) -> int:
        value = _int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
        return value

    parser = OneLineParser(
        prog="python -m dgan.data.prepare",
        description="Convert images, CIFAR-10, STL-10, LSUN's LMDB exports or the embedded digits "
        "into a dataset zip.",
    )
    parser.add_argument(
        "--source",
        required=True,
        help="image folder or zip, cifar-10-python.tar.gz, stl10_binary.tar.gz, an LMDB export "
        "folder (LSUN's *_lmdb), or 'digits'",
    )
    parser.add_argument("--dest", required=True, help="output .zip (replaced atomically)")
    parser.add_argument(
        "--resolution",
        type=power_of_two,
        help="output side in pixels (default: CIFAR 32, STL-10 64, digits 32, LMDB 256, "
        "folders the largest power of two every image reaches)",
    )
    parser.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default="center-crop",
        help="how folder and LMDB images become square: crop the centre, the reference's wide "
        "band on a black square (center-crop-wide), or stretch (default center-crop)",
    )
    parser.add_argument(
        "--crop-height",
        type=positive,
        help="center-crop-wide: height of the band inside the square (default: the resolution)",
    )
    parser.add_argument(
        "--max-images",
        type=positive,
        help="read only the first N images (LMDB: entries) in source order",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        help="CIFAR-10: train (default) or test; STL-10: unlabeled (default), train, test, "
        "train+unlabeled",
    )
    parser.add_argument(
        "--labels-from-folders",
        action="store_true",
        help="label folder images by their top-level subfolder (sorted names -> 0, 1, ...)",
    )
    return parser


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors exit with status 2 and one line naming the problem."""
    from dgan.config.cli_args import dashed

    parser = build_parser()
    args = parser.parse_args(dashed(sys.argv[1:] if argv is None else argv))
    try:
        summary = prepare(
            args.source,
            args.dest,
            resolution=args.resolution,
            transform=args.transform,
            max_images=args.max_images,
            labels_from_folders=args.labels_from_folders,
            split=args.split,
            crop_height=args.crop_height,
        )
    except (PrepareError, DatasetError) as exc:
        parser.error(str(exc))  # one error: line, exit status 2
    print(summary.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
