"""The ``debug`` overlay's tiny networks: any experiment shrunk to seconds on a CPU.

``conf/debug/default.yaml`` sets what every experiment shares (kimg, batch, no metrics,
cadences) and a ``debug`` node with the widths. The networks differ by experiment (StyleGAN2,
FastGAN, the projected D, MLPs), so their widths are set here, on the keys each network's config
has: a key the experiment's network config lacks is never added, so every network still gets
only arguments it takes. The resolution and the data stay the experiment's. A value it replaces
is checked first, as the real run would check it: the smoke test refuses what the run refuses.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

DEBUG_KEY = "debug"
NETWORKS = ("generator", "discriminator")


def tiny_values(debug: DictConfig | dict[str, Any], resolution: int | None) -> dict[str, Any]:
    """Network keys and their debug values.

    Args:
        debug: the run config's ``debug`` node (width, hidden, mapping_layers, resize).
        resolution: the images' side (None for 2-D data): StyleGAN2's channel_base is chosen
            so that every block, 4x4 to full size, has ``width`` channels.
    """
    width = int(debug["width"])
    values: dict[str, Any] = {
        "channel_max": width,
        "z_dim": width,
        "w_dim": width,
        "cmap_dim": width,
        "head_dim": width,
        "ngf": width // 2,
        "ndf": width,
        "num_fp16_res": 0,
        "hidden": int(debug["hidden"]),
        "mapping_layers": int(debug["mapping_layers"]),
    }
    if resolution:
        values["channel_base"] = width * int(resolution)
    return values


def _check_given(node: DictConfig, key: str, name: str) -> None:
    """The user's value of ``node[name]`` against the rules of the real run, before the debug
    width replaces it."""
    from dgan.config.instantiation import show_value
    from dgan.config.rules import rule_for
    from dgan.core.errors import ConfigError

    target = str(node["_target_"]) if "_target_" in node else None
    rule = rule_for(key, target, name)
    value = node[name]
    if rule is not None and not rule.accepts(value):
        raise ConfigError(f"{key}={show_value(value)} is not valid; expected {rule.text()} "
                          "(debug=default checks the value before it shrinks the network)")


def apply_debug(cfg: DictConfig) -> bool:
    """Shrink the networks of ``cfg`` in place when it holds a ``debug`` node (``debug=default``).

    Returns whether it did. Raises ConfigError for a value it would replace that the real run
    refuses.

    Args:
        cfg: the composed run config.
    """
    debug = cfg.get(DEBUG_KEY)
    if not isinstance(debug, DictConfig):
        return False
    model = cfg.get("model")
    if not isinstance(model, DictConfig):
        return False
    from dgan.config.data_sizing import size_from_data

    size_from_data(cfg)  # the widths below follow the resolution, which may wait for the data
    resolution = OmegaConf.select(cfg, "model.generator.img_resolution", default=None)
    values = tiny_values(debug, resolution)
    with open_dict(cfg):
        for name in NETWORKS:
            node = model.get(name)
            if not isinstance(node, DictConfig):
                continue
            for key, value in values.items():
                if key in node:  # null too: ndf null is the reference's (wide) default
                    _check_given(node, f"model.{name}.{key}", key)
                    node[key] = value
            # ProjectedGAN: the frozen features on smaller upsampled images, mini Ds to match.
            resize = int(debug.get("resize") or 0)
            for key in ("resize", "disc_resolution"):
                if resize and key in node:
                    _check_given(node, f"model.{name}.{key}", key)
            if resize and "resize" in node and int(node["resize"]) > resize:
                node["resize"] = resize
            if resize and "disc_resolution" in node and int(node["disc_resolution"]) > resize:
                node["disc_resolution"] = resize
    return True
