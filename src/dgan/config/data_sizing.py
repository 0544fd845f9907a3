"""A model sized from its data: ``null`` network keys filled from the dataset (experiment=images).

Hydra composes the config before any file is read, so an experiment for any image dataset
cannot know the resolution, channels or label width of ``dataset.path``. StyleGAN2-ADA reads
them from the data (``--cfg=auto``); here the experiment leaves them ``null`` and this step sets
them from the dataset, before anything resolves them (the ``auto`` preset's interpolations, the
debug overlay's widths and the run's checks read the resolution).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

# The generator keys read from the data, and the dataset attribute each comes from (the
# discriminator's keys follow the generator's in every StyleGAN2 config).
FROM_DATA = {"img_resolution": "resolution", "img_channels": "num_channels", "c_dim": "c_dim"}
PATH_REQUIRED = ("dataset.path is required: a folder or zip of images; make one with "
                 "python -m dgan.data.prepare --source=SRC --dest=DATA.zip, then "
                 "dataset.path=DATA.zip")


def keys_from_data(cfg: DictConfig) -> list[str]:
    """The generator keys of ``cfg`` that are ``null`` and so wait for the data."""
    generator = OmegaConf.select(cfg, "model.generator", default=None)
    if not isinstance(generator, DictConfig):
        return []
    return [key for key in FROM_DATA if key in generator and generator[key] is None]


def size_from_data(cfg: DictConfig, dataset: Any = None) -> dict[str, int]:
    """Fill the generator's ``null`` resolution, channels and label width from the dataset.

    Returns what it set (empty when nothing waited for the data). Raises ConfigError when a key
    waits for the data and ``dataset.path`` is not given.

    Args:
        cfg: the composed run config, changed in place.
        dataset: the built dataset, if the caller has one (else it is built from cfg.dataset).
    """
    from dgan.config.instantiation import build
    from dgan.core.errors import ConfigError

    keys = keys_from_data(cfg)
    if not keys:
        return {}
    if dataset is None:
        if "path" in cfg.dataset and not cfg.dataset.path:
            raise ConfigError(PATH_REQUIRED)
        dataset = build(cfg.dataset, "dataset")
    values = {key: int(getattr(dataset, FROM_DATA[key], 0) or 0) for key in keys}
    with open_dict(cfg):
        for key, value in values.items():
            cfg.model.generator[key] = value
    return values
