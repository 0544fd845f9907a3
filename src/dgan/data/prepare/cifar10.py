"""CIFAR-10's python batches (cifar-10-python.tar.gz or its extracted folder)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dgan.data.prepare.archives import _key, _Members, _unpickle
from dgan.data.prepare.source import PrepareError, _Source
from dgan.data.prepare.transforms import _resized

CIFAR_SIDE = 32




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
