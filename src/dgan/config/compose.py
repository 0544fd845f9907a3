"""The run config outside a Hydra app (notebooks, scripts): ``conf/train.yaml`` composed with
``key=value`` overrides, exactly as ``python -m dgan.train KEY=VALUE ...`` would compose it.

    cfg = compose_config(["experiment=gaussians25", "kimg=50"], output_dir="runs/toy")
    run = dgan.config.builder.build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, open_dict


def compose_config(overrides: Sequence[str] = (), output_dir: str | Path = "outputs/compose"
                   ) -> DictConfig:
    """Compose the training config and make ``output_dir`` its run directory.

    Hydra's global state is set as in a real job, so ``${hydra:...}`` interpolations and the
    overrides recorded for trackers work.

    Args:
        overrides: command-line style overrides (``experiment=gaussians25``, ``kimg=10``).
        output_dir: the run directory (what Hydra would create under outputs/).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from dgan.config.paths import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(CONFIG_DIR).resolve()), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    output_dir = Path(output_dir).resolve()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg
