"""scikit-learn's 1,797 handwritten 8x8 digits as a small image dataset that needs no download.

The digits ship inside scikit-learn, so tests, notebooks and CPU smoke runs have real images
with labels everywhere. Each 8x8 image (values 0..16, ink high) is scaled to 0..255 (white digit
on black) and upscaled bilinearly to ``resolution``; items follow the same contract as
:class:`dgan.data.images.ImageDataset`, with 10 classes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from dgan.data.images import DatasetError, ImageDatasetBase, is_power_of_two

NUM_CLASSES = 10
NATIVE_RESOLUTION = 8
# Part of the fingerprint: bump it if the upscaling changes, so cached statistics are dropped.
_UPSCALE_VERSION = "bilinear-v1"


def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits as uint8 [1797, 8, 8] in 0..255 and their int64 labels 0..9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 16 is the darkest ink in the source; map it to 255 so the digit is white on black.
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def upscale(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [N, h, w] images resized bilinearly to uint8 [N, 1, resolution, resolution]."""
    x = torch.from_numpy(images).to(torch.float32).unsqueeze(1)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


class DigitsDataset(ImageDatasetBase):
    """The embedded digits, 1 channel, upscaled to ``resolution`` (10 classes)."""

    def __init__(
        self,
        resolution: int = 32,
        use_labels: bool = False,
        xflip: bool = False,
        max_size: int | None = None,
        seed: int = 0,
        holdout: int = 0,
    ) -> None:
        """Load and upscale the digits.

        Args:
            resolution: output side, a power of two >= 8.
            use_labels: return the digit (0..9) as a one-hot ``c`` of length 10.
            xflip: double the dataset with horizontally mirrored digits.
            max_size: keep a seeded random subset of this many digits (None: all 1,797).
            seed: seed of that subset.
            holdout: digits set aside from training (0: none, or with ``max_size`` every digit
                outside the subset); see :func:`dgan.data.images.split_indices`.
        """
        # Below 8 px the digits would be downscaled into blurs; 8 is also >= MIN_RESOLUTION.
        if not is_power_of_two(int(resolution)) or resolution < NATIVE_RESOLUTION:
            raise DatasetError(
                f"digits resolution {resolution} is not a power of two >= {NATIVE_RESOLUTION} "
                "(8, 16, 32, 64, ...)"
            )
        raw, targets = load_digits_uint8()
        digest = hashlib.sha1(raw.tobytes() + targets.tobytes()).hexdigest()[:16]
        super().__init__(
            name="digits",
            raw_count=len(raw),
            resolution=int(resolution),
            num_channels=1,
            raw_labels=targets,
            use_labels=use_labels,
            xflip=xflip,
            max_size=max_size,
            seed=seed,
            holdout=holdout,
            source={"kind": "digits", "data": digest, "upscale": _UPSCALE_VERSION},
        )
        self._targets = targets[self._raw_idx]
        # Only the kept subset is upscaled: at 256 px all digits would take ~120 MB.
        self._images = upscale(raw[self._raw_idx], self.resolution)
        # _read_raw receives indices into all 1,797 digits; only the subset's rows exist here.
        self._row = {int(r): k for k, r in enumerate(self._raw_idx)}
        self._raw = raw  # 8x8 sources (115 KB): held-out digits are upscaled when read

    def _read_heldout(self, raw_index: int) -> np.ndarray:
        return upscale(self._raw[raw_index : raw_index + 1], self.resolution)[0]

    def _read_raw(self, raw_index: int) -> np.ndarray:
        return self._images[self._row[raw_index]].copy()

    def class_of(self, index: int) -> int:
        """The digit (0..9) shown by item ``index``."""
        pos, _ = self._locate(index)
        return int(self._targets[pos])
