"""Whether a saved state dict fits a module's: the first differences, named for one error line."""

from __future__ import annotations

from typing import Any

import torch

# Mismatching keys named in an error before it says "and N more".
MAX_KEYS_SHOWN = 3


def state_mismatches(saved: dict[str, Any], own: dict[str, Any]) -> str | None:
    """The first key/shape differences of two state dicts, or None when they fit.

    Args:
        saved: the state read from a file (non-tensor entries are ignored).
        own: the state of the module it should load into.
    """
    own = {k: v for k, v in own.items() if isinstance(v, torch.Tensor)}
    saved = {k: v for k, v in saved.items() if isinstance(v, torch.Tensor)}
    problems = [f"{k} missing from the checkpoint" for k in own if k not in saved]
    problems += [f"{k} not in this model" for k in saved if k not in own]
    problems += [f"{k} has shape {tuple(saved[k].shape)}, the model {tuple(own[k].shape)}"
                 for k in own if k in saved and saved[k].shape != own[k].shape]
    if not problems:
        return None
    more = len(problems) - MAX_KEYS_SHOWN
    return "; ".join(problems[:MAX_KEYS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
