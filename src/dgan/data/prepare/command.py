"""``prepare()``: pick the source, check the destination, write; and the command line."""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from dgan.data.images import (
    MIN_RESOLUTION,
    DatasetError,
    FileStore,
    is_power_of_two,
)
from dgan.data.prepare.archives import _CIFAR_MARKERS, _STL_MARKERS, _is_archive_folder, _Members
from dgan.data.prepare.cifar10 import _cifar_source
from dgan.data.prepare.digits import _digits_source
from dgan.data.prepare.folders import _folder_source
from dgan.data.prepare.lsun import (
    _LMDB_SUFFIX,
    LMDB_DATA_FILE,
    _is_lmdb_folder,
    _lmdb_source,
    _zipped_lmdb,
)
from dgan.data.prepare.source import (
    _SOURCES_HINT,
    MAX_RESOLUTION,
    SPLITS,
    PrepareError,
    PrepareSummary,
    _Source,
)
from dgan.data.prepare.stl10 import _stl_source
from dgan.data.prepare.transforms import TRANSFORMS, WIDE_TRANSFORM, _check_crop_height
from dgan.data.prepare.writer import _check_dest_folder, _check_dest_outside_source, _write_zip


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
