"""What a run config must satisfy before anything is built: every key read, every value
valid, the metrics, the data and the model agreeing with each other (one line naming the key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dgan.config.instantiation import show_value
from dgan.core.errors import ConfigError
from dgan.core.messages import closest_text, listed
from dgan.files.writable import check_creatable_dir

# What build_run passes to each top-level target besides the node's own keys.
BUILD_GIVEN: dict[str, tuple[str, ...]] = {
    "model": ("diffusion", "adaptive", "augment", "augment_p", "total_kimg"),
    "adaptive": ("driven", "drives"),
    "augment_p": ("driven", "drives", "follow"),
    "datamodule": ("dataset",),
    "metrics": ("reference_dataset",),
    "trainer": ("callbacks", "logger"),
}


def check_cache_dirs(cfg: DictConfig) -> None:
    """The metric caches can be made: a cache under a file would otherwise stop the run at its
    first evaluation, at the end of a short run, with its result lost."""
    seen = set()
    for key in ("paths.cache_dir", "metrics.cache_dir"):
        path = OmegaConf.select(cfg, key, default=None)
        if key.startswith("metrics.") and not (cfg.get("metrics") and cfg.metrics.get("metrics")):
            continue
        if isinstance(path, str) and path and path not in seen:
            seen.add(path)
            check_creatable_dir(path, key)


# Top-level nodes that hold named objects (each with its own _target_) rather than one.
OBJECT_LISTS = ("callbacks", "logger")


def check_run_config(cfg: DictConfig) -> None:
    """The one check of a run config, before anything is built: every leaf value against what
    its target accepts (type, range, choice, finite; :mod:`dgan.config.rules`), the run's own
    scalars, ``+key`` overrides that nothing reads, and metric names.

    Args:
        cfg: the composed run config (with Hydra's node when composed by Hydra).
    """
    from dgan.config import rules
    from dgan.config.instantiation import check_finite, check_interpolations, check_node

    check_interpolations(cfg)
    check_top_level(cfg)
    for key in cfg:
        key = str(key)
        if key == "hydra":
            continue
        node = cfg[key]
        if isinstance(node, DictConfig) and "_target_" in node:
            check_node(node, key, given=BUILD_GIVEN.get(key, ()))
        elif isinstance(node, DictConfig) and key in OBJECT_LISTS:
            for name in node:
                child = node[name]
                if child is None:
                    continue
                if not isinstance(child, DictConfig) or "_target_" not in child:
                    raise ConfigError(f"{key}.{name}: no _target_, so nothing builds it; give "
                                      f"{key}.{name}._target_ (a class) or {key}.{name}=null")
                check_node(child, f"{key}.{name}")
        elif isinstance(node, DictConfig):
            check_finite(key, OmegaConf.to_container(node, resolve=True))
        elif node is not None and key not in rules.BY_KEY:
            shown = OmegaConf.to_container(node) if isinstance(node, ListConfig) else node
            raise ConfigError(f"{key}={show_value(shown)} is not valid; expected a config "
                              f"(choose one with {key}=NAME on the command line) or null")
    _check_metric_names(cfg.get("metrics"))


def check_top_level(cfg: DictConfig) -> None:
    """The run's own scalars (:data:`dgan.config.rules.BY_KEY`), and no ``+key`` adds a key
    nothing reads.

    Args:
        cfg: the composed run config (with Hydra's node when composed by Hydra).
    """
    from dgan.config import rules
    from dgan.config.instantiation import check_finite

    for key, rule in rules.BY_KEY.items():
        value = OmegaConf.select(cfg, key, default=None)
        if "." not in key and key not in cfg:
            continue
        check_finite(key, value)
        if not rule.accepts(value):
            raise ConfigError(f"{key}={show_value(value)} is not valid; expected {rule.text()}")
    added = unread_top_level_keys(cfg)
    if added:
        valid = sorted(str(k) for k in cfg if k not in added and k != "hydra")
        raise ConfigError(listed(f"+{added[0]}: no part of dgan reads a top-level key "
                                 f"{added[0]!r}", "top-level keys", valid))
    unread = unread_nested_keys(cfg)
    if unread:
        raise ConfigError(f"+{unread[0]}: no part of dgan reads {unread[0]!r} (no object is "
                          f"built from {unread[0].rpartition('.')[0]!r}); remove it")


def unread_top_level_keys(cfg: DictConfig) -> list[str]:
    """Top-level keys that ``+key=value`` overrides added and that are no config group.

    ``+`` can only add a key the composed config lacks, and dgan reads only the keys its
    configs define: such a key would be ignored without a word.
    """
    from dgan.config.paths import CONFIG_DIR

    hydra_node = cfg.get("hydra")
    overrides = list(OmegaConf.select(hydra_node, "overrides.task", default=[]) or []) \
        if hydra_node is not None else []
    root_keys = set(OmegaConf.load(Path(CONFIG_DIR) / "train.yaml"))
    added = []
    for text in overrides:
        if not text.startswith("+"):
            continue
        key = text.lstrip("+").partition("=")[0].split("@")[0]
        if "." in key or "/" in key or key == "hydra" or (Path(CONFIG_DIR) / key).is_dir():
            continue  # a nested key (checked by its object) or a config group
        if text.startswith("++") and key in root_keys:
            continue  # ++ also overrides a key that exists
        added.append(key)
    return added


def _added_overrides(cfg: DictConfig) -> list[str]:
    """The ``+key=value`` overrides of the command line (Hydra's record of them)."""
    hydra_node = cfg.get("hydra")
    overrides = list(OmegaConf.select(hydra_node, "overrides.task", default=[]) or []) \
        if hydra_node is not None else []
    return [text for text in overrides if text.startswith("+")]


def unread_nested_keys(cfg: DictConfig) -> list[str]:
    """Dotted keys that ``+a.b=value`` added where no node on the way has a ``_target_``
    (``+paths.foo=1``): nothing is built from them, so nothing reads the key. Keys under a
    target are checked against its signature instead."""
    found = []
    for text in _added_overrides(cfg):
        key = text.lstrip("+").partition("=")[0].split("@")[0]
        if "." not in key or key.startswith("hydra.") or "/" in key:
            continue
        parts = key.split(".")
        read = False
        for depth in range(1, len(parts) + 1):
            node = OmegaConf.select(cfg, ".".join(parts[:depth]), default=None)
            if isinstance(node, DictConfig) and "_target_" in node:
                read = True
                break
        if not read:
            found.append(key)
    return found


def _check_metric_names(node: Any) -> None:
    """Metric names that select no samples (fid0k_full) stop here, not after the training."""
    if node is None or not isinstance(node.get("metrics"), ListConfig):
        return  # a string is refused with the other type errors when the callback is built
    from dgan.metrics.registry import lookup_metric

    for name in node.metrics:
        try:
            _, num = lookup_metric(str(name))
        except ValueError:
            from dgan.metrics.registry import metric_name_forms

            forms = metric_name_forms()
            raise ConfigError(listed(f"metrics.metrics: unknown metric {str(name)!r}"
                                     f"{closest_text(str(name), forms)}", "valid metrics",
                                     forms)) from None
        if num == 0:
            raise ConfigError(f"metrics.metrics: {name} selects 0 samples; give a count, e.g. "
                              f"{str(name).replace('0k', '50k', 1)}")


def check_metrics_generator(node: Any, G: Any) -> None:
    """A metric that needs a kind of generator (``cacc_digits*``: one conditioned on the digit
    labels) stops here, before a step of training."""
    if node is None or not isinstance(node.get("metrics"), ListConfig):
        return
    from dgan.metrics.class_accuracy import check_class_accuracy

    try:
        check_class_accuracy(node.metrics, G, key="metrics.metrics")
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_metrics_domain(node: Any, dataset: Any) -> None:
    """A metric on a dataset-specific feature network (the digits classifier) stops here when
    the run's images are not that dataset's, before a step of training."""
    if node is None or not isinstance(node.get("metrics"), ListConfig):
        return
    from dgan.metrics.domain import MetricDomainError, check_metric_domain

    try:
        check_metric_domain(node.metrics, dataset, "metrics.metrics")
    except MetricDomainError as err:
        raise ConfigError(str(err)) from None


def check_data_matches_model(dataset: Any, module: Any) -> None:
    res = getattr(dataset, "resolution", None)
    g_res = getattr(module.G, "img_resolution", None)
    if res is not None and g_res is not None and res != g_res:
        raise ConfigError(
            f"dataset resolution {res} does not match model resolution {g_res}; "
            f"set model.generator.img_resolution / model.discriminator.img_resolution={res} "
            f"or prepare the data at {g_res} px with python -m dgan.data.prepare"
        )
    ch = getattr(dataset, "num_channels", None)
    g_ch = getattr(module.G, "img_channels", None)
    if ch is not None and g_ch is not None and ch != g_ch:
        raise ConfigError(
            f"dataset has {ch} channel(s) but the model generates {g_ch}; "
            f"set model.generator.img_channels / model.discriminator.img_channels={ch}"
        )
    c_dim = getattr(dataset, "c_dim", 0)
    g_c = getattr(module.G, "c_dim", 0)
    if c_dim != g_c:
        raise ConfigError(
            f"dataset has c_dim={c_dim} labels but model.generator.c_dim={g_c}; "
            f"set model.generator.c_dim and model.discriminator.c_dim to {c_dim} "
            f"(or dataset.use_labels=false)"
        )
