"""A module-owned random generator whose state travels with ``state_dict``.

The diffusion and the augmentation modules draw every random number from a ``torch.Generator``
of their own, so that (a) adding one to a run does not shift the global stream that other
components (latents, dropout) draw from, and (b) a checkpoint resume continues the exact
sequence of t, noise and augmentations. The generator state goes through ``get_extra_state`` /
``set_extra_state``, the hook ``nn.Module.state_dict`` provides for non-tensor state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SeededModule(nn.Module):
    """Base class of modules that draw from their own generator, one per device type.

    Args:
        seed: seed of the generator, used the first time a device type needs one.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}
        # States loaded from a checkpoint wait here until the device they belong to is seen:
        # a generator can only be built once the images tell us which device it lives on.
        self._pending_rng: dict[str, torch.Tensor] = {}

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The module's generator for ``device`` (created, or restored, on first use)."""
        device = torch.device(device)
        key = device.type
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            if key in self._pending_rng:
                gen.set_state(self._pending_rng.pop(key))
            else:
                gen.manual_seed(self.seed)
            self._generators[key] = gen
        return gen

    def reseed(self, seed: int) -> None:
        """Restart the generator from ``seed`` (e.g. base seed + rank in DDP)."""
        self.seed = int(seed)
        self._generators.clear()
        self._pending_rng.clear()

    def get_extra_state(self) -> dict[str, Any]:
        states = {key: gen.get_state() for key, gen in self._generators.items()}
        states.update({k: v.clone() for k, v in self._pending_rng.items() if k not in states})
        return {"seed": self.seed, "rng": states}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self._generators.clear()
        self._pending_rng = {k: v.detach().cpu().clone() for k, v in state["rng"].items()}
