"""Warnings and notices a run prints that say nothing about the run: silenced by message.

Each is matched by its own text only, so that a new warning of the same kind still shows:

- Lightning's "modules in eval mode at the start of training": the frozen ``G_ema`` (and
  ProjectedGAN's frozen feature network) are in eval mode on purpose.
- Lightning's own use of torch's deprecated ``LeafSpec`` (Lightning's code, torch >= 2.10).
- Lightning's "Tip" advertising its cloud logger, printed at every start.
"""

from __future__ import annotations

import logging
import warnings

EVAL_MODE_MESSAGE = r"Found \d+ module\(s\) in eval mode at the start of training"
LEAF_SPEC_MESSAGE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
# The start of Lightning's advertisement (logger and checkpoint connectors).
TIP_PREFIX = "💡 Tip:"
# Lightning's rank_zero_info logs through these (a filter acts on the logger a record is made on).
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                     "lightning.fabric.utilities.rank_zero")


class _DropTips(logging.Filter):
    """Drops Lightning's advertisement lines; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


def quiet_known_warnings() -> None:
    """Silence the notices listed in the module docstring (idempotent)."""
    warnings.filterwarnings("ignore", message=EVAL_MODE_MESSAGE)
    warnings.filterwarnings("ignore", message=LEAF_SPEC_MESSAGE, category=FutureWarning)
    for name in RANK_ZERO_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in target.filters):
            target.addFilter(_DropTips())
