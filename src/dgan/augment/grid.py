"""A picture of what the augmentation does at several p, for logging during training."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

DEFAULT_GRID_PS = (0.0, 0.25, 0.5, 1.0)


def augmentation_grid(
    augment_module: nn.Module, images: Tensor, ps: Sequence[float] = DEFAULT_GRID_PS
) -> Tensor:
    """The batch augmented at each p in ``ps``: [len(ps) * N, C, H, W], row by row.

    Every row starts from the module's current random state, so the rows differ only in p (a
    sample augmented at some p is augmented the same way at every larger p). The module's p and
    random state are restored afterwards: training continues as if this was never called.
    """
    if not callable(getattr(augment_module, "set_p", None)):
        raise TypeError(f"{type(augment_module).__name__} has no set_p method")
    saved = _snapshot(augment_module.state_dict())
    rows = []
    try:
        with torch.no_grad():
            for p in ps:
                augment_module.load_state_dict(saved)
                augment_module.set_p(float(p))  # type: ignore[operator]
                rows.append(augment_module(images))
    finally:
        augment_module.load_state_dict(saved)
    return torch.cat(rows)


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
    # state_dict shares storage with the live buffers, which set_p overwrites in place.
    return {
        key: value.detach().clone() if isinstance(value, Tensor) else copy.deepcopy(value)
        for key, value in state.items()
    }
