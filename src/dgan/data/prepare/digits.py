"""scikit-learn's embedded 8x8 digits, upscaled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dgan.data.prepare.source import _Source

DIGITS_DEFAULT_RESOLUTION = 32


def _digits_source(resolution: int | None) -> _Source:
    from dgan.data.digits import DigitsDataset

    dataset = DigitsDataset(resolution=resolution or DIGITS_DEFAULT_RESOLUTION)

    def images() -> Iterator[tuple[np.ndarray, Any]]:
        for i in range(dataset.raw_size):
            yield dataset.get_uint8(i).numpy()[0], dataset.class_of(i)

    names = [str(d) for d in range(10)]
    return _Source("digits", dataset.resolution, 1, True, images(), names)
