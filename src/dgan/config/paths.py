"""Where the Hydra configs live.

``conf/`` sits at the repository root (the layout of lightning-hydra-template); DGAN_CONFIG_DIR
points elsewhere, e.g. at a copy of it for an installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = os.environ.get(
    "DGAN_CONFIG_DIR", str(Path(__file__).resolve().parents[3] / "conf")
)
