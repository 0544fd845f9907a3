"""Domain features for scikit-learn's 8x8 digits: a small CNN trained here, no download.

Inception features of 32x32 grey digits say little; a classifier trained on the digits
themselves gives features that separate good and bad samples. It is trained once,
deterministically (fixed seed, CPU), and cached on disk; its penultimate layer feeds FID and
precision/recall (``fid_digits*``, ``pr_digits*``).

Input protocol matches the other extractors: uint8 images (generator output mapped with
``x * 127.5 + 128``), 1 or 3 channels, any resolution (resized to 32x32).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dgan.files.atomic import atomic_write_bytes
from dgan.files.pictures import to_uint8
from dgan.metrics.feature_extractors import FeatureExtractor, file_digest

DIGITS_RESOLUTION = 32
FEATURE_DIM = 64
# Bump when the architecture or training recipe changes: names the cache file.
CLASSIFIER_VERSION = 2
DIGITS_EXTRACTOR = "digits-cnn"


def default_cache_dir() -> Path:
    """``~/.cache/dgan`` (used when no cache directory is configured)."""
    return Path.home() / ".cache" / "dgan"


def upscale_digits(
    images: torch.Tensor, resolution: int = DIGITS_RESOLUTION, align_corners: bool = False
) -> torch.Tensor:
    """sklearn digits (values 0..16, [N, 8, 8] or [N, 64]) -> [N, 1, R, R] floats in [-1, 1].

    Args:
        images: raw digit intensities 0..16.
        resolution: output size.
        align_corners: bilinear corner convention (training uses both, for robustness).
    """
    x = images.reshape(-1, 1, 8, 8).float() / 16 * 2 - 1
    size = (resolution, resolution)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
    return x.clamp(-1, 1)


def uint8_to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] (C = 1 or 3) -> classifier input [N, 1, 32, 32] in [-1, 1]."""
    x = (images.float() - 128) / 127.5
    if x.shape[1] != 1:
        x = x.mean(dim=1, keepdim=True)
    if x.shape[-2:] != (DIGITS_RESOLUTION, DIGITS_RESOLUTION):
        x = F.interpolate(
            x, size=(DIGITS_RESOLUTION, DIGITS_RESOLUTION), mode="bilinear", align_corners=False
        )
    return x


class DigitsClassifier(nn.Module):
    """Three conv blocks and an embedding layer; ``embed`` gives the metric features."""

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = 10) -> None:
        """Build the network.

        Args:
            feature_dim: width of the penultimate (feature) layer.
            num_classes: number of digit classes.
        """
        super().__init__()
        self.body = nn.Sequential(
            # Digits are 8x8 upscaled: 16x16 keeps all their detail at a quarter of the cost.
            nn.AvgPool2d(2),  # 16x16
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),  # 8x8
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),  # 4x4
            nn.Flatten(),
        )
        self.embedding = nn.Linear(32 * 16, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (before the non-linearity, so they are not sparse)."""
        return self.embedding(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of images [N, 1, 32, 32] in [-1, 1]."""
        return self.head(F.relu(self.embed(x)))


def _training_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Both upscaling corner conventions of every digit: views [2, N, 1, 32, 32], labels [N].

    Both conventions, and the uint8 round trip every metric input goes through, so that the
    features do not depend on how the data module happens to upscale.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = torch.as_tensor(digits.images, dtype=torch.float32)
    labels = torch.as_tensor(digits.target, dtype=torch.long)
    views = [
        uint8_to_input(to_uint8(upscale_digits(raw, align_corners=ac))) for ac in (False, True)
    ]
    return torch.stack(views), labels


def train_digits_classifier(seed: int = 0, epochs: int = 12, batch_size: int = 64) -> nn.Module:
    """Train the classifier deterministically on CPU (a few seconds).

    Args:
        seed: seed of initialisation, shuffling and augmentation.
        epochs: passes over the (two-view) training set.
        batch_size: minibatch size.
    """
    views, y = _training_images()
    # A private RNG state: training must neither disturb nor depend on the caller's seeds.
    # Grad mode on: the first use may come from an evaluation running under torch.no_grad().
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = DigitsClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), batch_size):
                idx = order[start : start + batch_size]
                # Each batch sees one of the two upscaling conventions, at random.
                xb = views[int(torch.randint(len(views), (1,), generator=gen)), idx]
                # One-pixel shifts: generated digits are rarely perfectly centred.
                shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
                xb = torch.roll(xb, shifts=shift, dims=(2, 3))
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    model.eval().requires_grad_(False)
    return model


def classifier_accuracy(model: nn.Module) -> float:
    """Accuracy on the (training) digits, worst upscaling convention; a sanity check."""
    views, y = _training_images()
    with torch.no_grad():
        return min((model(x).argmax(1) == y).float().mean().item() for x in views)


def classifier_path(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:
    """Cache file of the trained classifier.

    Args:
        cache_dir: cache directory; default ``~/.cache/dgan``.
        seed: training seed (part of the file name).
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"digits_classifier_v{CLASSIFIER_VERSION}_seed{seed}.pt"


def load_digits_classifier(
    cache_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> tuple[nn.Module, Path]:
    """The classifier from the cache, trained and cached (atomically) on first use.

    Args:
        cache_dir: cache directory; default ``~/.cache/dgan``.
        seed: training seed.
    """
    path = classifier_path(cache_dir, seed)
    model = DigitsClassifier()
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval().requires_grad_(False), path
        except (RuntimeError, OSError, EOFError) as err:
            # Stale or damaged file (e.g. left by another version): training again is cheap.
            message = f"retraining the digits classifier, cannot load {path}: {err}"
            warnings.warn(message, stacklevel=2)
    model = train_digits_classifier(seed)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    # Concurrent ranks may train at the same time; each replaces the file whole.
    atomic_write_bytes(path, buffer.getvalue())
    return model, path


class DigitsFeatureNet(nn.Module):
    """uint8 images in, ``(features,)`` out: the interface of torch-fidelity's extractors."""

    def __init__(self, classifier: nn.Module) -> None:
        """Wrap a trained classifier.

        Args:
            classifier: a :class:`DigitsClassifier`.
        """
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        """Penultimate features of uint8 images [N, C, H, W]."""
        return (self.classifier.embed(uint8_to_input(images)),)


def build_digits_extractor(
    device: torch.device | str = "cpu", cache_dir: str | os.PathLike[str] | None = None
) -> FeatureExtractor:
    """The digits extractor (layer ``"features"``), trained on first use.

    Args:
        device: device to run it on.
        cache_dir: where the trained classifier is cached; default ``~/.cache/dgan``.
    """
    classifier, path = load_digits_classifier(cache_dir)
    module = DigitsFeatureNet(classifier).to(device).eval()
    return FeatureExtractor(
        name=DIGITS_EXTRACTOR,
        key=f"{DIGITS_EXTRACTOR}-v{CLASSIFIER_VERSION}-{file_digest(path)}",
        module=module,
        layers=("features",),
        rgb=False,
    )
