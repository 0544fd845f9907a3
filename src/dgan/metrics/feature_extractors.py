"""Feature extractors of the image metrics (Inception-v3, VGG16), built offline-first.

Precision/recall (``prNk3_full``) uses NVIDIA's VGG16, the TorchScript ``vgg16.pt`` that
StyleGAN2-ADA's metrics download, so the numbers compare with the papers'; torch-fidelity's
torchvision VGG16 stays available as ``prNk3_torchvision_full``.

torch-fidelity's extractors download their weights at first use. Compute nodes of a cluster
often have no internet, and finding that out after hours of training loses the run, so here:

- weights are looked up on disk first: an explicit per-extractor path, then ``weights_dir``
  (filled by ``python -m dgan.metrics.fetch_weights DIR``), then torch's hub cache;
- a download is only tried when no ``weights_dir`` was given, with a short socket timeout;
- :func:`check_extractors_available` runs the same lookup at start-up without building a model.

The files keep the names torch-fidelity and torchvision give them, so a directory filled by
either tool (or a copy of ``~/.cache/torch/hub/checkpoints``) works as ``weights_dir``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from dgan.files.atomic import atomic_path, atomic_write

INCEPTION = "inception-v3-compat"
VGG16 = "vgg16"
VGG16_NVIDIA = "vgg16-nvidia"
# StyleGAN2-ADA's metrics download NVIDIA's VGG16 (TorchScript) from here.
NVIDIA_VGG16_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt"
)

# The command users are told about when weights are missing.
FETCH_COMMAND = "python -m dgan.metrics.fetch_weights DIR"
# The key that takes a weights directory in the message (the commands name their own).
TRAIN_WEIGHTS_KEY = "metrics.weights_dir"


@dataclasses.dataclass(frozen=True)
class ExtractorSpec:
    """Where the weights of one extractor come from.

    Args:
        name: torch-fidelity's name of the extractor.
        file_name: weights file name torch-fidelity / torchvision use (hub cache name).
        url: address torch-fidelity / torchvision download the weights from.
        description: human-readable name for messages.
    """

    name: str
    file_name: str
    url: str
    description: str


def _inception_url() -> str:
    # Taken from torch-fidelity itself so that we follow it if it moves the file.
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        return URL_INCEPTION_V3
    except ImportError:  # pragma: no cover - only without torch-fidelity
        return (
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth"
        )


def _vgg16_url() -> str:
    # torch-fidelity builds VGG16 from torchvision's IMAGENET1K_V1 weights.
    try:
        import torchvision

        return torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    except (ImportError, AttributeError):  # pragma: no cover - old torchvision
        return "https://download.pytorch.org/models/vgg16-397923af.pth"


EXTRACTORS: dict[str, ExtractorSpec] = {
    INCEPTION: ExtractorSpec(
        name=INCEPTION,
        file_name=Path(_inception_url()).name,
        url=_inception_url(),
        description="Inception-v3 (FID/KID/IS)",
    ),
    VGG16: ExtractorSpec(
        name=VGG16,
        file_name=Path(_vgg16_url()).name,
        url=_vgg16_url(),
        description="torchvision VGG16 (prNk3_torchvision_full)",
    ),
    VGG16_NVIDIA: ExtractorSpec(
        name=VGG16_NVIDIA,
        file_name=Path(NVIDIA_VGG16_URL).name,
        url=NVIDIA_VGG16_URL,
        description="NVIDIA's VGG16 of StyleGAN2-ADA (precision/recall prNk3_full, LPIPS of ppl_*)",
    ),
}

DEFAULT_DOWNLOAD_TIMEOUT = 20.0
DOWNLOAD_CHUNK = 1 << 20  # bytes read per call while downloading


class WeightsUnavailableError(FileNotFoundError):
    """Weights of a feature extractor are not on disk and could not be downloaded."""


def hub_checkpoint_dir() -> Path:
    """torch's hub cache, where torch-fidelity and torchvision put downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_message(spec: ExtractorSpec, searched: list[Path], reason: str,
                     key: str = TRAIN_WEIGHTS_KEY) -> str:
    places = ", ".join(str(p) for p in searched) or "(nowhere)"
    # Training's message names evaluate's key too: both are said about the same run.
    aside = "dgan.evaluate: `weights_dir=DIR`; " if key == TRAIN_WEIGHTS_KEY else ""
    return (
        f"{spec.description} weights are not available: expected file '{spec.file_name}' "
        f"(searched: {places}); {reason}. On a machine with internet access run "
        f"`{FETCH_COMMAND}`, copy DIR to this machine and add the override "
        f"`{key}=DIR` ({aside}or set DGAN_WEIGHTS_DIR, "
        f"or put '{spec.file_name}' into {hub_checkpoint_dir()})."
    )


# Downloads that already failed in this process: a second attempt would only wait again.
_FAILED_DOWNLOADS: dict[str, str] = {}


def resolve_weights_path(
    extractor: str,
    weights_dir: str | os.PathLike[str] | None = None,
    weights_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    *,
    allow_download: bool | None = None,
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
    weights_key: str = TRAIN_WEIGHTS_KEY,
) -> Path:
    """Local path of ``extractor``'s weights, downloading them only as the last resort.

    Args:
        extractor: extractor name (``"inception-v3-compat"`` or ``"vgg16"``).
        weights_dir: directory of pre-downloaded weights under their expected file names.
        weights_paths: explicit weights file per extractor name; wins over ``weights_dir``.
        allow_download: try to download when nothing is on disk; default: only when no
            ``weights_dir`` and no explicit path were given (an offline setup never waits).
        download_timeout: socket timeout of the download in seconds.
        weights_key: the caller's key of ``weights_dir``, named when the weights are missing.
    """
    spec = EXTRACTORS[extractor]
    explicit = (weights_paths or {}).get(extractor)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        raise WeightsUnavailableError(
            _missing_message(spec, [path], "the configured weights path does not exist",
                             weights_key)
        )
    searched: list[Path] = []
    if weights_dir is not None:
        candidate = Path(weights_dir).expanduser() / spec.file_name
        searched.append(candidate)
        if candidate.is_file():
            return candidate
    hub_candidate = hub_checkpoint_dir() / spec.file_name
    searched.append(hub_candidate)
    if hub_candidate.is_file():
        return hub_candidate
    if allow_download is None:
        allow_download = weights_dir is None
    if not allow_download:
        raise WeightsUnavailableError(
            _missing_message(spec, searched, "downloads are disabled when weights_dir is set",
                             weights_key)
        )
    if spec.url in _FAILED_DOWNLOADS:
        raise WeightsUnavailableError(
            _missing_message(spec, searched, f"download failed: {_FAILED_DOWNLOADS[spec.url]}",
                             weights_key)
        )
    try:
        return download_file(spec.url, hub_candidate, timeout=download_timeout)
    except OSError as err:  # URLError, timeouts and hash mismatches are all OSErrors
        _FAILED_DOWNLOADS[spec.url] = repr(err)
        raise WeightsUnavailableError(
            _missing_message(spec, searched, f"download failed: {err!r}", weights_key)
        ) from err


def check_extractors_available(
    extractor_names: Iterable[str],
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    weights_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
) -> None:
    """Fail now, not after training, if the extractors' weights cannot be had.

    Only checks that the files exist (no model is built); downloads only when no
    ``weights_dir`` was given. Raises :class:`WeightsUnavailableError` listing every missing
    file name.

    Args:
        extractor_names: the extractors (what :func:`dgan.metrics.registry.extractors_for_metrics`
            says the run's metrics need).
        weights_dir: directory of pre-downloaded weights (``fetch_weights`` output).
        weights_paths: explicit weights file per extractor name.
        download_timeout: socket timeout of a download attempt in seconds.
    """
    problems = []
    for extractor in dict.fromkeys(extractor_names):
        try:
            resolve_weights_path(
                extractor, weights_dir, weights_paths, download_timeout=download_timeout
            )
        except WeightsUnavailableError as err:
            problems.append(str(err))
    if problems:
        raise WeightsUnavailableError("\n".join(problems))


def _hash_prefix(file_name: str) -> str | None:
    # Hub convention: ``name-<first hex digits of sha256>.ext``.
    match = re.search(r"-([0-9a-f]{6,64})\.[A-Za-z0-9]+$", file_name)
    return match.group(1) if match else None


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
    check_hash: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify the hash encoded in its name.

    Args:
        url: address to fetch.
        dest: target file; replaced only once the download is complete and verified.
        timeout: socket timeout in seconds (connect and each read), so it never hangs.
        check_hash: compare the sha256 prefix in the file name (hub convention) if present.
    """
    dest = Path(dest)
    digest = hashlib.sha256()

    def fetch(out: BinaryIO) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(DOWNLOAD_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        expected = _hash_prefix(dest.name) if check_hash else None
        if expected and not digest.hexdigest().startswith(expected):
            raise OSError(
                f"sha256 of {url} is {digest.hexdigest()[:12]}..., expected {expected}..."
            )

    return atomic_write(dest, fetch, suffix=".part")


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Cheap identity of a weights file (size and first/last MiB) for cache keys."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            digest.update(f.read(chunk))
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class FeatureExtractor:
    """A loaded extractor: uint8 images in, named feature tensors out.

    Args:
        name: extractor name (part of cache keys).
        key: identity of the exact weights (name and file digest), for cache keys.
        module: network called as ``module(uint8 [N, 3, H, W])`` returning a feature tuple.
        layers: names of the tuple's entries, in order.
        rgb: whether the module needs 3 channels (1-channel images are repeated).
    """

    name: str
    key: str
    module: nn.Module
    layers: tuple[str, ...]
    rgb: bool = True

    @property
    def device(self) -> torch.device:
        """Device the network lives on."""
        return next(self.module.parameters()).device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a uint8 batch [N, C, H, W] by layer name (float32, on the device)."""
        if images.dtype != torch.uint8:
            raise TypeError(f"extractors take uint8 images, got {images.dtype}")
        images = images.to(self.device)
        if self.rgb and images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        out = self.module(images)
        return {layer: feat.float() for layer, feat in zip(self.layers, out, strict=True)}


class TorchScriptFeatures(nn.Module):
    """NVIDIA's TorchScript VGG16 as an extractor: uint8 [N, 3, H, W] in (it resizes to 224
    itself), ``(features [N, 4096],)`` out, as StyleGAN2-ADA calls it.

    Args:
        detector: the loaded TorchScript module (``torch.jit.load("vgg16.pt")``).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.detector(images, return_features=True),)


# Building Inception or VGG16 takes seconds and hundreds of MB; keep one per weights/device.
_EXTRACTOR_CACHE: dict[tuple[str, str, str], FeatureExtractor] = {}


def build_feature_extractor(
    extractor: str,
    device: torch.device | str = "cpu",
    weights_dir: str | os.PathLike[str] | None = None,
    weights_paths: Mapping[str, str | os.PathLike[str]] | None = None,
) -> FeatureExtractor:
    """torch-fidelity's extractor with weights from a local file (see module docstring).

    Inception returns ``"2048"`` (pool features: FID/KID) and ``"logits_unbiased"`` (IS, as
    StyleGAN2-ADA: no output bias); VGG16 returns ``"fc2_relu"`` (precision/recall).

    Args:
        extractor: ``"inception-v3-compat"`` or ``"vgg16"``.
        device: device to run the network on.
        weights_dir: directory of pre-downloaded weights.
        weights_paths: explicit weights file per extractor name.
    """
    path = resolve_weights_path(extractor, weights_dir, weights_paths)
    device = torch.device(device)
    cache_key = (extractor, str(path.resolve()), str(device))
    cached = _EXTRACTOR_CACHE.get(cache_key)
    if cached is not None and cached.key == f"{extractor}-{file_digest(path)}":
        return cached
    if extractor == INCEPTION:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        layers: tuple[str, ...] = ("2048", "logits_unbiased")
        module: nn.Module = FeatureExtractorInceptionV3(
            INCEPTION, list(layers), feature_extractor_weights_path=str(path)
        )
    elif extractor == VGG16:
        from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

        layers = ("fc2_relu",)
        module = FeatureExtractorVGG16(
            VGG16, list(layers), feature_extractor_weights_path=str(path)
        )
    elif extractor == VGG16_NVIDIA:
        layers = ("features",)
        module = TorchScriptFeatures(torch.jit.load(str(path), map_location="cpu"))
    else:
        raise ValueError(f"unknown extractor {extractor!r}; known: {', '.join(EXTRACTORS)}")
    module = module.to(device).eval().requires_grad_(False)
    built = FeatureExtractor(
        name=extractor, key=f"{extractor}-{file_digest(path)}", module=module, layers=layers
    )
    _EXTRACTOR_CACHE[cache_key] = built
    return built


def clear_extractor_cache() -> None:
    """Drop the built extractors (frees their memory)."""
    _EXTRACTOR_CACHE.clear()
    _FAILED_DOWNLOADS.clear()


def copy_weights(src: str | os.PathLike[str], weights_dir: str | os.PathLike[str]) -> Path:
    """Copy an existing weights file into ``weights_dir`` under its own name (atomic)."""
    src = Path(src)
    dest = Path(weights_dir) / src.name
    with atomic_path(dest, suffix=".part") as tmp:
        shutil.copyfile(src, tmp)
    return dest
