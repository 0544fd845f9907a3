"""Image datasets in the StyleGAN2-ADA layout: a folder or a zip of square power-of-two images.

The layout is the one ``python -m dgan.data.prepare`` writes (and StyleGAN2-ADA's
``dataset_tool.py``): images anywhere below the root, optional ``dataset.json`` at the root::

    {"labels": [["00000/img00000000.png", 6], ["00000/img00000001.png", 9], ...]}

or ``{"labels": null}``. Every item is ``(x, c)``: ``x`` a float32 tensor [C, H, W] in [-1, 1]
(``uint8 / 127.5 - 1``), ``c`` the one-hot label as float32 [c_dim] (shape [0] without labels).
With ``xflip`` the dataset is twice as long; items ``>= raw_size`` are the mirrored images.

All checks a user can fail happen in the constructor, before any training step, and each raises
one :class:`DatasetError` line that names the file or key and what would be valid. Only what
the header does not show is found later, when an item is read: a truncated file raises
:class:`CorruptImageError`, out-of-range float or 32-bit pixels :class:`UnsupportedImageError`
(both carry the file in ``.file``). ``verify=True`` decodes every image up front instead.

Image modes (:func:`image_to_uint8`, shared with ``dgan.data.prepare``) become 8 bits per channel,
1 channel for the grey modes and 3 for the others:

- ``L``, ``RGB``: as stored. ``1``: 0 / 255. ``P`` / ``PA``: looked up in the palette.
- ``LA``, ``RGBA``, ``PA``, ``RGBX``: the alpha (or padding) channel is dropped, not composited:
  the colour under a transparent pixel is kept, as StyleGAN2-ADA's ``dataset_tool.py`` does, so
  datasets made by either tool have the same pixels.
- ``CMYK``, ``YCbCr``: converted to RGB by Pillow.
- ``I;16`` (``I;16L``, ``I;16B``, ``I;16N``): 16-bit grey, ``round(v * 255 / 65535)``; an 8-bit
  value ``u`` stored as ``257 * u`` comes back as ``u`` exactly.
- ``I`` (32-bit integers, what older Pillow and 16-bit TIFFs give): read as 16-bit data when every
  value lies in 0..65535, refused otherwise (the meaning of larger values is unknown).
- ``F`` (32-bit float): read as [0, 1], ``round(v * 255)``; NaN or values outside are refused.
- Anything else (``LAB``, ``HSV``, ``La``, ``RGBa``, ...) is refused in one line naming the file.

16-bit RGB(A) PNGs are opened by Pillow as 8-bit ``RGB`` / ``RGBA`` keeping the high byte of each
value (``v // 256``, within one level of the rounded value and equal to it for ``257 * u``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LABELS_FILE = "dataset.json"
PREPARE_COMMAND = "python -m dgan.data.prepare --source=... --dest=..."
MIN_RESOLUTION = 4
# Bad files named in the one line of ImageDataset.verify; the rest are counted (all in .files).
_NAMED_IN_SUMMARY = 3
BYTES_PER_MIB = 1024**2
# Default memory for decoded images (ImageDataset.cache_mb): CIFAR-10 (50k x 3 x 32 x 32 bytes,
# 147 MiB) and other small sets fit; 256 px sets of tens of thousands of images do not.
DEFAULT_CACHE_MB = 1024

# What reading an image can raise for a file that is not a valid image: SyntaxError is PIL's
# historic choice for some malformed headers, struct.error escapes a few header parsers, a zip
# entry whose bytes fail their CRC raises BadZipFile (zlib.error if deflated), and an absurd
# size raises DecompressionBombError. Each becomes one CorruptImageError line.
IMAGE_READ_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
    Image.DecompressionBombError,
)

UINT8_MAX = 255
UINT16_MAX = 65535
# 16-bit grey in each byte order Pillow names (the array interface gives the right dtype).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Modes Pillow itself converts exactly: to L for the grey ones, to RGB (palette lookup, alpha
# or padding dropped, CMYK / YCbCr transformed) for the colour ones.
_PIL_GREY_MODES = ("1", "LA")
_PIL_COLOUR_MODES = ("P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr")
GREY_MODES = ("1", "L", "LA", *SIXTEEN_BIT_MODES, "I", "F")
SUPPORTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr",
                   *SIXTEEN_BIT_MODES, "I", "F")


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [-1, 1] (``x / 127.5 - 1``): the one conversion, whether an
    item is converted in the loader or a uint8 batch after its copy to the device, so the
    values are bitwise the same either way."""
    return x.to(torch.float32).div_(127.5).sub_(1.0)

class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message names the file or key and the fix."""


# The first quoted name after "image " in a message, and a quoted mode: how an ImageFileError
# rebuilt from text alone (see below) finds its attributes again.
_FILE_IN_MESSAGE = re.compile(r"image '(?P<file>.+?)'(?=[\s:;,]|$)")
_MODE_IN_MESSAGE = re.compile(r"mode '(?P<mode>[^']+)'")


class ImageFileError(DatasetError):
    """One image file that cannot be used; ``file`` is its name in the dataset (also in the text).

    ``files`` lists every bad file when several were found at once (:meth:`ImageDataset.verify`).

    A DataLoader worker's exception reaches the main process re-created as ``type(exc)(text)``,
    ``text`` being "Caught ... in DataLoader worker process N" and the worker's traceback. Built
    from such a text, the exception recovers the original one-line message (``str(exc)``) and
    ``file``, and keeps the text in ``worker_traceback``, so the caller prints one line either way.
    """

    def __init__(
        self, message: str, file: str | None = None, files: Sequence[str] | None = None
    ) -> None:
        """Record ``message`` (one line) and the bad ``file`` (found in the message if None)."""
        self.worker_traceback: str | None = None
        original = _original_line(message, type(self)) if "\n" in message else None
        if original is not None:
            self.worker_traceback = message
            message = original
        super().__init__(message)
        if file is None:
            match = _FILE_IN_MESSAGE.search(message)
            file = match.group("file") if match else None
        self.file: str | None = file
        self.files: list[str] = list(files) if files else ([file] if file else [])


class CorruptImageError(ImageFileError):
    """An image file that cannot be decoded: truncated, damaged, or not an image at all."""


class UnsupportedImageError(ImageFileError):
    """An image whose mode (or, for modes I and F, pixel range) dgan does not convert."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        mode: str | None = None,
        files: Sequence[str] | None = None,
    ) -> None:
        """As :class:`ImageFileError`, with the PIL ``mode`` (found in the message if None)."""
        super().__init__(message, file=file, files=files)
        if mode is None:
            match = _MODE_IN_MESSAGE.search(str(self))
            mode = match.group("mode") if match else None
        self.mode: str | None = mode


def _original_line(text: str, cls: type[BaseException]) -> str | None:
    """The ``module.Class: message`` line of ``cls`` in a formatted traceback, without prefix."""
    prefix = f"{cls.__module__}.{cls.__qualname__}: "
    for line in reversed(text.splitlines()):
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return n > 0 and (n & (n - 1)) == 0


def check_image_mode(mode: str, file: str = "image", where: str | None = None) -> None:
    """Raise :class:`UnsupportedImageError` (one line) unless PIL ``mode`` is in SUPPORTED_MODES.

    ``file`` is the name the error carries; ``where`` how the message names it (default: quoted).
    """
    if mode in SUPPORTED_MODES:
        return
    where = where or f"'{file}'"
    raise UnsupportedImageError(
        f"image {where} has mode '{mode}', which dgan cannot convert to 8 bits; supported "
        f"modes: {', '.join(SUPPORTED_MODES)}; save the file as 8-bit RGB or greyscale (L)",
        file=file,
        mode=mode,
    )


def image_channels(mode: str) -> int:
    """Channels an image of PIL ``mode`` becomes: 1 for grey modes, 3 for everything else."""
    # The networks see 1 or 3 channels, never alpha: LA becomes L, RGBA / P / CMYK become RGB.
    return 1 if mode in GREY_MODES else 3


def image_to_uint8(
    image: Image.Image, channels: int | None = None, file: str = "image", where: str | None = None
) -> np.ndarray:
    """``image`` of any supported mode as a writable uint8 array [H, W, C], scaled to 0..255.

    Args:
        image: a decoded PIL image; how each mode is scaled is in the module docstring.
        channels: 1 or 3 to get that many channels (grey is repeated into RGB; RGB becomes
            grey by Pillow's ITU-R 601-2 luma), None for the mode's own (:func:`image_channels`).
        file: the name an error carries in ``.file``.
        where: how an error message names the file (default: ``file`` quoted).

    Raises:
        UnsupportedImageError: a mode outside SUPPORTED_MODES, or mode I / F pixels outside
            the range it is read in; one line naming the file, the mode and what is supported.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    where = where or f"'{file}'"
    mode = image.mode
    check_image_mode(mode, file, where)
    if mode in ("L", "RGB"):
        array = np.array(image, dtype=np.uint8)
    elif mode in _PIL_GREY_MODES:
        array = np.array(image.convert("L"), dtype=np.uint8)
    elif mode in _PIL_COLOUR_MODES:
        array = np.array(image.convert("RGB"), dtype=np.uint8)
    elif mode == "F":
        array = _float_to_uint8(np.asarray(image), file, where)
    else:
        array = _integer_to_uint8(np.asarray(image), mode, file, where)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if channels is None or channels == array.shape[2]:
        return array
    if channels == 3:
        return np.repeat(array, 3, axis=2)
    grey = Image.fromarray(np.ascontiguousarray(array)).convert("L")
    return np.array(grey, dtype=np.uint8)[:, :, np.newaxis]


def _integer_to_uint8(values: np.ndarray, mode: str, file: str, where: str) -> np.ndarray:
    """16-bit grey (or mode I within 0..65535) rounded to 8 bits: round(v * 255 / 65535)."""
    if mode == "I" and values.size:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > UINT16_MAX:
            raise UnsupportedImageError(
                f"image {where} has mode 'I' (32-bit integers) with values {low}..{high}; dgan "
                f"reads mode I as 16-bit data in 0..{UINT16_MAX}: rescale the file to that range "
                "or save it as 8 bits",
                file=file,
                mode=mode,
            )
    # Integer arithmetic rounds exactly: 65535 is odd, so no value lies halfway between levels.
    wide = values.astype(np.uint32)
    return ((wide * UINT8_MAX + UINT16_MAX // 2) // UINT16_MAX).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, file: str, where: str) -> np.ndarray:
    """Mode F in [0, 1] rounded to 8 bits: round(v * 255), halves up as for the integers."""
    if values.size:
        if not np.isfinite(values).all():
            problem = "NaN or infinite values"
        else:
            low, high = float(values.min()), float(values.max())
            problem = f"values {low:g}..{high:g}" if low < 0.0 or high > 1.0 else ""
        if problem:
            raise UnsupportedImageError(
                f"image {where} has mode 'F' (32-bit float) with {problem}; dgan reads float "
                "images as [0, 1]: rescale the file to that range or save it as 8 bits",
                file=file,
                mode="F",
            )
    scaled = np.floor(values.astype(np.float64) * UINT8_MAX + 0.5)
    return scaled.astype(np.uint8)


def image_to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A PIL image as a writable uint8 array [channels, H, W] (see :func:`image_to_uint8`)."""
    return np.ascontiguousarray(image_to_uint8(image, channels).transpose(2, 0, 1))


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class FileStore:
    """The files of a folder (recursively) or of a zip archive, addressed by relative posix name.

    A zip handle is opened lazily in each process: DataLoader workers must not share the parent's
    file offset, so the handle is dropped when the store is pickled or forked.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Index ``path`` (a folder or a .zip); raise DatasetError if it is neither."""
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DatasetError(
                f"dataset path '{self.path}' does not exist; prepare a dataset first: "
                f"python -m dgan.data.prepare --source=... --dest={self.path}"
            )
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        if self.path.is_dir():
            self.kind = "folder"
            self._entries = self._scan_folder()
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
            self._entries = self._scan_zip()
        else:
            raise DatasetError(
                f"dataset path '{self.path}' is neither a folder nor a zip archive; "
                f"convert it with: {PREPARE_COMMAND}"
            )

    def _scan_folder(self) -> dict[str, tuple[int, int]]:
        entries: dict[str, tuple[int, int]] = {}
        for root, dirs, files in os.walk(self.path):
            dirs[:] = [d for d in dirs if not _hidden(d)]
            for fname in files:
                if _hidden(fname):
                    continue
                full = Path(root) / fname
                stat = full.stat()
                entries[full.relative_to(self.path).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return entries

    def _scan_zip(self) -> dict[str, tuple[int, int]]:
        entries: dict[str, tuple[int, int]] = {}
        try:
            with zipfile.ZipFile(self.path) as zf:
                for info in zf.infolist():
                    if info.is_dir() or any(_hidden(p) for p in info.filename.split("/")):
                        continue
                    # The CRC makes the fingerprint follow the content, not the archive's dates.
                    entries[info.filename] = (info.file_size, info.CRC)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"corrupt zip archive '{self.path}': {_one_line(exc)}") from exc
        return entries

    def names(self) -> list[str]:
        """Every file name, sorted, so that a folder and its zip list the same order."""
        return sorted(self._entries)

    def image_names(self) -> list[str]:
        """Names of the image files (by extension), sorted."""
        return [n for n in self.names() if n.lower().endswith(IMAGE_EXTENSIONS)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def describe(self, names: Iterable[str]) -> list[Any]:
        """(name, size, mtime or CRC) for ``names``: what the fingerprint hashes."""
        return [[n, *self._entries[n]] for n in names]

    def where(self, name: str) -> str:
        """How to name file ``name`` in a message."""
        return f"'{name}' in {self.path}"

    def open(self, name: str) -> IO[bytes]:
        """A binary file object for ``name``."""
        if self.kind == "folder":
            return open(self.path / name, "rb")
        return self._zipfile().open(name)

    def read_bytes(self, name: str) -> bytes:
        """The whole content of ``name``."""
        with self.open(name) as f:
            return f.read()

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def close(self) -> None:
        """Close the zip handle of this process, if one is open."""
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_zip"] = None
        state["_zip_pid"] = None
        return state

    def read_header(self, name: str) -> tuple[tuple[int, int], str]:
        """(width, height) and PIL mode of image ``name``, reading its header only.

        Raises CorruptImageError (one line naming the file) if the header cannot be parsed.
        """
        try:
            with self.open(name) as f, Image.open(f) as image:
                return image.size, image.mode
        except IMAGE_READ_ERRORS as exc:
            raise self._corrupt(name, exc) from exc

    def read_image(self, name: str, verify: bool = False) -> Image.Image:
        """Image ``name`` fully decoded; a truncated or damaged file raises CorruptImageError.

        With ``verify``, PIL's integrity check runs first (for PNG: every chunk's CRC, which
        decoding alone skips), at the cost of reading the file twice.
        """
        try:
            if verify:
                # verify() leaves the image unusable, so the pixels come from a second open.
                with self.open(name) as f, Image.open(f) as image:
                    image.verify()
            with self.open(name) as f, Image.open(f) as image:
                image.load()
                # Closing the file also frees the pixels in recent Pillow: keep a copy.
                return image.copy()
        except IMAGE_READ_ERRORS as exc:
            raise self._corrupt(name, exc) from exc

    def _corrupt(self, name: str, exc: BaseException) -> CorruptImageError:
        return CorruptImageError(
            f"corrupt or unreadable image {self.where(name)}: {_one_line(exc)}; "
            "replace or delete the file",
            file=name,
        )


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def parse_labels(document: Any, names: Sequence[str], where: str) -> np.ndarray | None:
    """Labels of ``names`` from a parsed dataset.json, in the order of ``names``.

    Returns None for ``{"labels": null}``, int64 [N] for class indices or float32 [N, k] for
    label vectors. Raises DatasetError naming the key or file for anything else.
    """
    example = '{"labels": [["00000/img00000000.png", 6], ...]} or {"labels": null}'
    if not isinstance(document, dict) or "labels" not in document:
        raise DatasetError(f"{where}: missing key 'labels'; expected {example}")
    raw = document["labels"]
    if raw is None:
        return None
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    if not isinstance(pairs, list):
        raise DatasetError(f"{where}: key 'labels' must be a list or null; expected {example}")
    by_name: dict[str, Any] = {}
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise DatasetError(
                f"{where}: labels[{k}] must be [\"file name\", label], got {pair!r:.80}"
            )
        # Archives made on Windows may carry backslashes; the store always uses '/'.
        fname = pair[0].replace("\\", "/")
        if fname in by_name:
            raise DatasetError(f"{where}: '{fname}' is labelled twice; give each image one label")
        by_name[fname] = pair[1]
    known = set(names)
    extra = [n for n in by_name if n not in known]
    if extra:
        raise DatasetError(
            f"{where}: label count does not match: {len(by_name)} labels for {len(names)} images; "
            f"'{extra[0]}' is labelled but no such image exists (re-run prepare, or remove it)"
        )
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DatasetError(
            f"{where}: label count does not match: {len(by_name)} labels for {len(names)} images; "
            f"image '{missing[0]}' has no label (every image needs one, or set labels to null)"
        )
    values = [by_name[n] for n in names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        labels = np.asarray(values, dtype=np.int64)
        if labels.size and labels.min() < 0:
            bad = names[int(np.argmin(labels))]
            raise DatasetError(f"{where}: label of '{bad}' is negative; classes are 0, 1, 2, ...")
        return labels
    if all(isinstance(v, list) for v in values):
        lengths = {len(v) for v in values}
        numeric = all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for v in values for x in v
        )
        if len(lengths) == 1 and numeric:
            return np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    bad = next(
        (n for n, v in zip(names, values, strict=True) if not isinstance(v, (int, list))), names[0]
    )
    raise DatasetError(
        f"{where}: label of '{bad}' is {by_name[bad]!r:.40}; labels must be all class indices "
        "(0, 1, ...) or all number lists of one length"
    )


def subset_indices(count: int, max_size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``max_size`` of ``count`` items (all if None)."""
    return split_indices(count, max_size, 0, seed)[0]


def split_indices(count: int, max_size: int | None, holdout: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted raw indices of the training set and of the held-out images, disjoint.

    Training takes the first ``max_size`` of a seeded permutation (all but the held-out images
    when None); the held-out images are its last ``holdout`` (0: every image outside the
    training set). Held-out images come from the end, so a subset stays the subset it was
    without them.

    Args:
        count: images in the source.
        max_size: size of the training subset (None: every image not held out).
        holdout: images set aside from the end of the permutation (0: none set aside).
        seed: seed of the permutation.
    """
    if holdout < 0 or holdout >= count:
        raise DatasetError(f"holdout={holdout} must be in [0, {count - 1}]: the dataset has "
                           f"{count} images and training needs at least one")
    if max_size is None and holdout == 0:
        return np.arange(count, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # RandomState keeps its stream across NumPy versions, so a subset stays the same subset.
    order = np.random.RandomState(seed % (2**32)).permutation(count)
    kept = count - holdout
    size = kept if max_size is None else min(int(max_size), kept)
    heldout = order[kept:] if holdout else order[size:]
    return np.sort(order[:size]).astype(np.int64), np.sort(heldout).astype(np.int64)


class ImageDatasetBase(Dataset):
    """The shared contract: subset, labels, x-flips, uint8 -> [-1, 1], fingerprint.

    Subclasses read one raw image with ``_read_raw(raw_index) -> uint8 [C, H, W]``.
    """

    def __init__(
        self,
        *,
        name: str,
        raw_count: int,
        resolution: int,
        num_channels: int,
        raw_labels: np.ndarray | None,
        use_labels: bool,
        xflip: bool,
        max_size: int | None,
        seed: int,
        source: dict[str, Any],
        holdout: int = 0,
    ) -> None:
        """Set up the items over ``raw_count`` raw images.

        Args:
            name: short name for logs and file names.
            raw_count: images in the source, before subset and flips.
            resolution: side of the square images, a power of two.
            num_channels: 1 (grey) or 3 (RGB).
            raw_labels: int64 [raw_count] classes or float32 [raw_count, k] vectors, or None.
            use_labels: return labels as ``c``; False gives ``c`` of shape [0].
            xflip: append a mirrored copy of every image.
            max_size: keep a seeded random subset of this many images (None: all).
            seed: seed of that subset.
            source: JSON-able description of the exact source data, hashed into the fingerprint.
            holdout: images kept out of training (:func:`split_indices`; 0: with ``max_size``,
                the images outside the subset are the held-out ones, else there are none).
        """
        super().__init__()
        if max_size is not None and (
            isinstance(max_size, bool) or int(max_size) != max_size or max_size < 1
        ):
            raise DatasetError(f"max_size must be a positive integer or null, got {max_size!r}")
        if raw_count < 1:
            raise DatasetError(f"dataset '{name}' has no images")
        if use_labels and raw_labels is None:
            raise DatasetError(f"use_labels=True but dataset '{name}' has no labels")
        self.name = name
        self.resolution = int(resolution)
        self.num_channels = int(num_channels)
        self.xflip = bool(xflip)
        self.use_labels = bool(use_labels)
        self.max_size = None if max_size is None else int(max_size)
        self.seed = int(seed)
        if isinstance(holdout, bool) or int(holdout) != holdout:
            raise DatasetError(f"holdout must be an integer >= 0 (0: none), got {holdout!r}")
        self.holdout = int(holdout)
        self._raw_idx, self._heldout_idx = split_indices(raw_count, self.max_size,
                                                         self.holdout, self.seed)
        # Every raw image's label: the held-out images have theirs too.
        self._all_labels = self._onehot(raw_labels) if use_labels else None
        self._labels = self._all_labels[self._raw_idx] if self._all_labels is not None else None
        subset = None if len(self._raw_idx) == raw_count else _hash(self._raw_idx.tolist())
        self.fingerprint = _hash(
            {
                "source": source,
                "raw_count": raw_count,
                # The subset's indices, not (max_size, seed): equal subsets share statistics.
                "subset": subset,
                "xflip": self.xflip,
                "resolution": self.resolution,
                "channels": self.num_channels,
            }
        )

    @staticmethod
    def _onehot(raw_labels: np.ndarray | None) -> np.ndarray:
        assert raw_labels is not None
        if raw_labels.ndim == 2:
            return raw_labels.astype(np.float32)
        onehot = np.zeros((len(raw_labels), int(raw_labels.max()) + 1), dtype=np.float32)
        onehot[np.arange(len(raw_labels)), raw_labels] = 1.0
        return onehot

    @property
    def raw_size(self) -> int:
        """Images after the subset, before x-flips."""
        return len(self._raw_idx)

    @property
    def raw_indices(self) -> np.ndarray:
        """Raw indices (into the source) of the training images, sorted."""
        return self._raw_idx.copy()

    @property
    def heldout_raw_indices(self) -> np.ndarray:
        """Raw indices of the held-out images, sorted and disjoint from :attr:`raw_indices`."""
        return self._heldout_idx.copy()

    @property
    def heldout_size(self) -> int:
        """Number of held-out images (0: none)."""
        return len(self._heldout_idx)

    def heldout_item(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out image ``k`` as (float32 [C, H, W] in [-1, 1], label), never mirrored."""
        raw_index = int(self._heldout_idx[k])
        x = uint8_to_float(torch.from_numpy(self._read_heldout(raw_index)))
        if self._all_labels is None:
            return x, torch.zeros(0, dtype=torch.float32)
        return x, torch.from_numpy(self._all_labels[raw_index].copy())

    def _read_heldout(self, raw_index: int) -> np.ndarray:
        """Raw image ``raw_index`` outside the training set (subclasses may cache only those)."""
        return self._read_raw(raw_index)

    @property
    def c_dim(self) -> int:
        """Length of the label vector ``c`` (0 without labels)."""
        return 0 if self._labels is None else int(self._labels.shape[1])

    @property
    def has_labels(self) -> bool:
        """Whether items carry a non-empty label."""
        return self.c_dim > 0

    def __len__(self) -> int:
        return self.raw_size * (2 if self.xflip else 1)

    def _locate(self, index: int) -> tuple[int, bool]:
        """(position in the subset, mirrored?) of item ``index``."""
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"item {index} out of range for {n} items")
        return index % self.raw_size, index >= self.raw_size

    def _read_raw(self, raw_index: int) -> np.ndarray:
        raise NotImplementedError

    def get_uint8(self, index: int) -> torch.Tensor:
        """Item ``index`` as uint8 [C, H, W], mirrored for the flipped half."""
        pos, flipped = self._locate(index)
        array = self._read_raw(int(self._raw_idx[pos]))
        if flipped:
            array = np.ascontiguousarray(array[:, :, ::-1])
        return torch.from_numpy(array)

    def get_label(self, index: int) -> torch.Tensor:
        """Label of item ``index`` as float32 [c_dim] (one-hot for class labels)."""
        pos, _ = self._locate(index)
        if self._labels is None:
            return torch.zeros(0, dtype=torch.float32)
        return torch.from_numpy(self._labels[pos].copy())

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = uint8_to_float(self.get_uint8(index))
        return x, self.get_label(index)

    def check_resolution(self, resolution: int | None) -> None:
        """Raise DatasetError unless ``resolution`` is None or the dataset's resolution."""
        if resolution is not None and int(resolution) != self.resolution:
            raise DatasetError(
                f"dataset resolution {self.resolution} does not match model resolution "
                f"{resolution} (dataset.resolution / model resolution must equal the image size "
                f"of '{self.name}'; re-prepare the data with "
                f"python -m dgan.data.prepare ... --resolution={resolution}, or train at "
                f"{self.resolution})"
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, items={len(self)}, "
            f"resolution={self.resolution}, channels={self.num_channels}, c_dim={self.c_dim}, "
            f"xflip={self.xflip})"
        )


class ImageDataset(ImageDatasetBase):
    """A folder (searched recursively) or zip of images, with optional dataset.json labels."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        resolution: int | None = None,
        use_labels: bool = False,
        xflip: bool = False,
        max_size: int | None = None,
        seed: int = 0,
        name: str | None = None,
        verify: bool = False,
        cache_mb: float = DEFAULT_CACHE_MB,
        holdout: int = 0,
    ) -> None:
        """Index and validate the images under ``path``.

        Args:
            path: folder or .zip in the StyleGAN2-ADA layout (see ``dgan.data.prepare``).
            resolution: the resolution the model expects; a mismatch raises (None: no check).
            use_labels: return the dataset.json labels as one-hot ``c``.
            xflip: double the dataset with horizontally mirrored images.
            max_size: keep a seeded random subset of this many images (None: all).
            seed: seed of that subset.
            name: name for logs (default: the file name without extension).
            verify: decode every image of the subset now (:meth:`verify`), so that a damaged
                file stops the start, not a training step; costs one full read of the data.
            cache_mb: memory (MiB) for keeping the decoded subset: :meth:`preload` (which the
                datamodule calls before its workers start) decodes every image once and serves
                them from memory when ``C * H * W * images`` bytes fit (0: never; decode each
                item as it is read). Workers forked afterwards share that memory.
            holdout: images set aside from training, for measuring how D overfits (0: none;
                see :func:`split_indices`).
        """
        self.store = FileStore(path)
        where = str(self.store.path)
        names = self.store.image_names()
        if not names:
            raise DatasetError(
                f"no images found in '{where}' (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                f"create a dataset with: {PREPARE_COMMAND}"
            )
        first_size: tuple[int, int] | None = None
        channels = 1
        for fname in names:
            size, mode = self.store.read_header(fname)
            check_image_mode(mode, fname, self.store.where(fname))
            if first_size is None:
                first_size = size
            elif size != first_size:
                raise DatasetError(
                    f"images of mixed sizes: {self.store.where(fname)} is {size[0]}x{size[1]} but "
                    f"'{names[0]}' is {first_size[0]}x{first_size[1]}; all images must share one "
                    f"size (resize them with: {PREPARE_COMMAND} --resolution=N)"
                )
            channels = max(channels, image_channels(mode))
        assert first_size is not None
        width, height = first_size
        if width != height:
            raise DatasetError(
                f"images are not square: {self.store.where(names[0])} is {width}x{height}; "
                f"crop them with: {PREPARE_COMMAND} --transform=center-crop"
            )
        if not is_power_of_two(width) or width < MIN_RESOLUTION:
            raise DatasetError(
                f"image size {width}x{height} of {self.store.where(names[0])} is not a power of "
                f"two >= {MIN_RESOLUTION} (4, 8, ..., 1024); resize with: "
                f"{PREPARE_COMMAND} --resolution=N"
            )

        raw_labels = None
        if use_labels:
            raw_labels = self._load_labels(names)
        self._names = names
        default_name = self.store.path.stem if self.store.kind == "zip" else self.store.path.name
        super().__init__(
            name=name or default_name,
            raw_count=len(names),
            resolution=width,
            num_channels=channels,
            raw_labels=raw_labels,
            use_labels=use_labels,
            xflip=xflip,
            max_size=max_size,
            seed=seed,
            holdout=holdout,
            source={
                "kind": self.store.kind,
                "path": str(self.store.path.resolve()),
                "files": _hash(self.store.describe(names)),
            },
        )
        self.check_resolution(resolution)
        self.cache_mb = float(cache_mb)
        if self.cache_mb < 0:
            raise DatasetError(f"cache_mb must be >= 0 (0: no cache), got {cache_mb!r}")
        self._cache: np.ndarray | None = None
        if verify:
            self.verify()

    def verify(self) -> int:
        """Decode every image of the subset as training will; return how many were checked.

        Each file gets PIL's integrity check, a full decode and the mode conversion. Raises the
        first failure's ImageFileError subclass with every bad file named in one line (and
        listed in ``.files``), so one pass finds them all.
        """
        bad: list[ImageFileError] = []
        for raw_index in self._raw_idx:
            try:
                self._decode(int(raw_index), verify=True)
            except ImageFileError as exc:
                bad.append(exc)
        if not bad:
            return len(self._raw_idx)
        first = bad[0]
        names = [exc.file or "?" for exc in bad]
        message = str(first)
        if len(bad) > 1:
            shown = ", ".join(f"'{n}'" for n in names[1:_NAMED_IN_SUMMARY + 1])
            rest = len(bad) - 1 - _NAMED_IN_SUMMARY
            more = f" and {rest} more" if rest > 0 else ""
            message += f" ({len(bad) - 1} more bad images: {shown}{more})"
        if isinstance(first, UnsupportedImageError):
            raise UnsupportedImageError(message, file=first.file, mode=first.mode, files=names)
        raise type(first)(message, file=first.file, files=names)

    def _load_labels(self, names: list[str]) -> np.ndarray:
        where = f"{self.store.path}/{LABELS_FILE}"
        hint = (
            "set use_labels=false, or prepare the data with labels "
            f"({PREPARE_COMMAND} --labels-from-folders, or a dataset.json in the source folder)"
        )
        if LABELS_FILE not in self.store:
            raise DatasetError(f"use_labels=True but '{where}' does not exist; {hint}")
        try:
            document = json.loads(self.store.read_bytes(LABELS_FILE).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{where}: not valid JSON ({_one_line(exc)})") from exc
        labels = parse_labels(document, names, where)
        if labels is None:
            raise DatasetError(f"use_labels=True but '{where}' has \"labels\": null; {hint}")
        return labels

    @property
    def image_names(self) -> list[str]:
        """File names of the images in the subset, in item order (before flips)."""
        return [self._names[i] for i in self._raw_idx]

    @property
    def cache_bytes(self) -> int:
        """Bytes the decoded subset takes in memory (uint8, before flips)."""
        return self.raw_size * self.num_channels * self.resolution * self.resolution

    @property
    def cached(self) -> bool:
        """Whether items are served from the decoded copy in memory (:meth:`preload`)."""
        return self._cache is not None

    def preload(self) -> bool:
        """Decode every image of the subset once and keep them, when they fit in ``cache_mb``.

        Returns whether the items now come from memory. Call it in the process that starts the
        DataLoader workers, before it starts them: forked workers then share the pages instead
        of decoding each image again every epoch (twice with ``xflip``).
        """
        if self._cache is not None:
            return True
        if self.cache_bytes > self.cache_mb * BYTES_PER_MIB:
            return False
        cache = np.empty(
            (self.raw_size, self.num_channels, self.resolution, self.resolution), dtype=np.uint8
        )
        for pos, raw_index in enumerate(self._raw_idx):
            cache[pos] = self._decode(int(raw_index), verify=False)
        self._cache = cache
        return True

    def _read_raw(self, raw_index: int) -> np.ndarray:
        if self._cache is not None:
            # _raw_idx is sorted: the row of a raw index is its position in the subset.
            return self._cache[int(np.searchsorted(self._raw_idx, raw_index))].copy()
        return self._decode(raw_index, verify=False)

    def _read_heldout(self, raw_index: int) -> np.ndarray:
        return self._decode(raw_index, verify=False)  # the cache holds the training set only

    def _decode(self, raw_index: int, verify: bool) -> np.ndarray:
        """Raw image ``raw_index`` as uint8 [C, H, W]; every failure is an ImageFileError."""
        fname = self._names[raw_index]
        where = self.store.where(fname)
        image = self.store.read_image(fname, verify=verify)
        if image.size != (self.resolution, self.resolution):
            raise ImageFileError(
                f"image {where} changed size since the dataset was opened: "
                f"{image.size[0]}x{image.size[1]}, expected {self.resolution}x{self.resolution}",
                file=fname,
            )
        array = image_to_uint8(image, self.num_channels, fname, where)
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def close(self) -> None:
        """Release the zip handle of this process."""
        self.store.close()
