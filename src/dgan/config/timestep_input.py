"""D's t input follows the diffusion: its t range, or no t input without a diffusion.

Applied when a run is built (so that ``diffusion=none`` changes the diffusion group only and a
t_max override reaches D without an interpolation in the model config) and when a D is rebuilt
from a checkpoint's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def discriminator_t_settings(node: Mapping[str, Any] | None, t_max: int | None
                             ) -> dict[str, Any]:
    """The keys of D's config node that the diffusion sets.

    Args:
        node: ``model.discriminator`` (None or a D without ``t_conditioning``: nothing to set).
        t_max: the diffusion's largest timestep (None: no diffusion, so D takes no t).
    """
    if node is None or "t_conditioning" not in node:
        return {}  # a D that takes no t (e.g. ProjectedGAN's)
    if t_max is None:
        return {"t_conditioning": "none"}
    return {"t_max": int(t_max)}
