"""What every source gives the writer: images streamed with their labels (the one interface
of a source), what was skipped, and the summary of a conversion."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The largest side prepare writes (the largest StyleGAN2 preset, FFHQ-1024).
MAX_RESOLUTION = 1024


SPLITS = ("train", "test", "unlabeled", "train+unlabeled")


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
