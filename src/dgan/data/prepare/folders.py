"""A folder (searched recursively) or zip of image files, labels from dataset.json or the
top-level folders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from dgan.data.images import (
    LABELS_FILE,
    MIN_RESOLUTION,
    FileStore,
    check_image_mode,
    image_channels,
    image_to_uint8,
    parse_labels,
)
from dgan.data.prepare.source import _SOURCES_HINT, PrepareError, _Skipped, _Source
from dgan.data.prepare.transforms import _TOO_SMALL, _check_crop_height, _fit


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
