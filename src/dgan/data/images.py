"""Image datasets in the StyleGAN2-ADA layout: a folder or a zip of square power-of-two images.

The layout is the one ``python -m dgan.data.prepare`` writes (and StyleGAN2-ADA's
``dataset_tool.py``): images anywhere below the root, optional ``dataset.json`` at the root::

    {"labels": [["00000/img00000000.png", 6], ["00000/img00000001.png", 9], ...]}

or ``{"labels": null}``. Every item is ``(x, c)``: ``x`` a float32 tensor [C, H, W] in [-1, 1]
(``uint8 / 127.5 - 1``), ``c`` the one-hot label as float32 [c_dim] (shape [0] without labels).
With ``xflip`` the dataset is twice as long; items ``>= raw_size`` are the mirrored images.

All checks a user can fail happen in the constructor, before any training step, and each raises
one :class:`DatasetError` line that names the file or key and what would be valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LABELS_FILE = "dataset.json"
PREPARE_COMMAND = "python -m dgan.data.prepare --source=... --dest=..."
MIN_RESOLUTION = 4

# Exceptions PIL raises for files it cannot parse; SyntaxError is PIL's historic choice for
# some malformed headers, so it belongs here too.
_PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message names the file or key and the fix."""


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return n > 0 and (n & (n - 1)) == 0


def image_channels(mode: str) -> int:
    """Channels an image of PIL ``mode`` becomes: 1 for grey modes, 3 for everything else."""
    # LA loses its alpha and 16-bit / float greys become 8-bit L: the networks see 1 or 3
    # channels, never alpha, so RGBA and P (palette) are converted to RGB.
    if mode in ("1", "L", "LA", "I", "F") or mode.startswith("I;16"):
        return 1
    return 3


def image_to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A PIL image as a writable uint8 array [channels, H, W]."""
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        image = image.convert(target)
    array = np.array(image, dtype=np.uint8)
    if array.ndim == 2:
        return array[np.newaxis]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


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
        """(width, height) and PIL mode of image ``name``, reading its header only."""
        try:
            with self.open(name) as f, Image.open(f) as image:
                return image.size, image.mode
        except _PIL_ERRORS as exc:
            raise DatasetError(
                f"corrupt or unreadable image {self.where(name)}: {_one_line(exc)}; "
                "replace or delete the file"
            ) from exc

    def read_image(self, name: str) -> Image.Image:
        """Image ``name`` fully decoded (a truncated file fails here, named)."""
        try:
            with self.open(name) as f, Image.open(f) as image:
                image.load()
                # Closing the file also frees the pixels in recent Pillow: keep a copy.
                return image.copy()
        except _PIL_ERRORS as exc:
            raise DatasetError(
                f"corrupt or unreadable image {self.where(name)}: {_one_line(exc)}; "
                "replace or delete the file"
            ) from exc


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
    if max_size is None or max_size >= count:
        return np.arange(count, dtype=np.int64)
    # RandomState keeps its stream across NumPy versions, so a subset stays the same subset.
    order = np.random.RandomState(seed % (2**32)).permutation(count)
    return np.sort(order[:max_size]).astype(np.int64)


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
        self._raw_idx = subset_indices(raw_count, self.max_size, self.seed)
        self._labels = self._onehot(raw_labels)[self._raw_idx] if use_labels else None
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
        x = self.get_uint8(index).to(torch.float32).div_(127.5).sub_(1.0)
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
            source={
                "kind": self.store.kind,
                "path": str(self.store.path.resolve()),
                "files": _hash(self.store.describe(names)),
            },
        )
        self.check_resolution(resolution)

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

    def _read_raw(self, raw_index: int) -> np.ndarray:
        fname = self._names[raw_index]
        image = self.store.read_image(fname)
        if image.size != (self.resolution, self.resolution):
            raise DatasetError(
                f"{self.store.where(fname)} changed size since the dataset was opened: "
                f"{image.size[0]}x{image.size[1]}, expected {self.resolution}x{self.resolution}"
            )
        return image_to_array(image, self.num_channels)

    def close(self) -> None:
        """Release the zip handle of this process."""
        self.store.close()
