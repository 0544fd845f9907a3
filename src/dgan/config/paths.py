"""Where the Hydra configs live.

``conf/`` sits at the repository root (the layout of lightning-hydra-template); the package
carries the same files as ``dgan/conf`` (a link in the repository, a copy in a wheel), used when
dgan runs from an installed wheel. DGAN_CONFIG_DIR points elsewhere, e.g. at an edited copy.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_CONFIG = "train.yaml"
# A checkout: src/dgan/config/paths.py -> the repository's conf/.
REPO_CONFIG_DIR = Path(__file__).resolve().parents[3] / "conf"
# An installed package: dgan/conf beside dgan/config.
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def default_config_dir() -> Path:
    """The repository's conf/ in a checkout, else the copy inside the package."""
    if (REPO_CONFIG_DIR / ROOT_CONFIG).is_file() and REPO_CONFIG_DIR.parent.joinpath(
            "src", "dgan").is_dir():
        return REPO_CONFIG_DIR
    return PACKAGED_CONFIG_DIR


CONFIG_DIR = os.environ.get("DGAN_CONFIG_DIR", str(default_config_dir()))
