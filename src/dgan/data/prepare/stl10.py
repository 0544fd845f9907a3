"""STL-10's binary arrays (stl10_binary.tar.gz or its extracted folder)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dgan.data.prepare.archives import _Members
from dgan.data.prepare.source import PrepareError, _Source
from dgan.data.prepare.transforms import _resized

STL_SIDE = 96


STL_DEFAULT_RESOLUTION = 64


_STL_BYTES = 3 * STL_SIDE * STL_SIDE




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
