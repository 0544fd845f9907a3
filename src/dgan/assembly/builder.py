"""From a composed config to the objects of a run: dataset, networks, diffusion, module,
callbacks, loggers and trainer.

Each config group maps to one object through ``_target_``. Everything is validated here, before
any training: a bad value or an unknown key stops the run with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from dgan.callbacks.checkpoint import LAST
from dgan.callbacks.metrics import MetricsCallback
from dgan.config.batch_layout import batch_layout
from dgan.config.data_sizing import size_from_data
from dgan.config.instantiation import build, show_value
from dgan.config.timestep_input import discriminator_t_settings
from dgan.core.errors import ConfigError
from dgan.core.messages import closest_text, listed
from dgan.core.state_fit import state_mismatches
from dgan.files.writable import check_creatable_dir, check_writable_dir
from dgan.tracking.run_info import run_info


@dataclasses.dataclass
class Run:
    """The objects of one training run."""

    cfg: DictConfig
    run_dir: Path
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: L.LightningDataModule
    metrics: MetricsCallback | None
    ckpt_path: str | None
    # The checkpoint is at the run's last kimg but its final evaluation was not recorded: fit
    # runs no training step, only the end of training (final metrics, summary).
    finish_only: bool = False

    def headline_value(self) -> float | None:
        """Final value of the first metric (what a sweeper minimises or maximises)."""
        if self.metrics is None or not self.metrics.final:
            return None
        return float(next(iter(self.metrics.final.values())))


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run config as a plain dict (Hydra's own node left out)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key])
        else cfg[key]
        for key in cfg if key != "hydra"
    }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)


def resolve_resume(resume: str | None, run_dir: Path) -> str | None:
    """``null`` | ``auto`` (the latest checkpoint of this run dir, if any) | a path."""
    if resume in (None, "", "none"):
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / LAST
        return str(last) if last.exists() else None
    if not Path(resume).is_file():
        raise ConfigError(f"resume={resume!r}: no such checkpoint file; use a path, auto or null")
    return str(resume)


def build_run(cfg: DictConfig) -> Run:
    """Validate ``cfg`` and build every object of the run (no training yet)."""
    size_from_data(cfg)  # the model keys left to the data (experiment=images), before any check
    check_run_config(cfg)
    seed_everything(int(cfg.seed))
    run_dir = Path(cfg.paths.output_dir)
    check_writable_dir(run_dir, "hydra.run.dir")
    check_cache_dirs(cfg)
    plain = plain_config(cfg)

    if "path" in cfg.dataset and not cfg.dataset.path:
        raise ConfigError(
            "dataset.path is required: a folder or zip of images; make one with "
            "python -m dgan.data.prepare --source=SRC --dest=DATA.zip, then dataset.path=DATA.zip"
        )
    dataset = build(cfg.dataset, "dataset")
    _check_metric_domain(cfg.get("metrics"), dataset)
    module = build_module(cfg, len(dataset))
    augment = module.augment
    module.run_config = plain  # set after: instantiate would build the _target_s inside it
    _check_data_matches_model(dataset, module)
    _check_metric_generator(cfg.get("metrics"), module.G)
    datamodule = build(cfg.datamodule, "datamodule", dataset=dataset)

    callbacks: list[L.Callback] = [
        build(node, f"callbacks.{name}") for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None
    ]
    if augment is not None and cfg.get("augment_p"):
        callbacks.append(build(cfg.augment_p, "augment_p"))
    metrics = None
    if cfg.get("metrics") and cfg.metrics.metrics:
        metrics = build(cfg.metrics, "metrics",
                        reference_dataset=_reference_dataset(cfg, dataset))
        callbacks.append(metrics)
    loggers = [build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()
               if node is not None]
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    try:
        # Recorded in the run config (checkpoints, loggers): what one step means on this run.
        plain["global_batch"] = batch_layout(module.batch_size, module.batch_gpu,
                                             trainer.num_devices, trainer.num_nodes)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    ckpt_path = resolve_resume(cfg.get("resume"), run_dir)
    resume_kimg = None
    if ckpt_path is not None:
        resume_kimg = _check_resume(ckpt_path, float(cfg.kimg), module,
                                    unfinished=_final_evaluation_missing(run_dir, metrics))
    elif cfg.get("init"):
        # A resumed run continues from its own checkpoint; init only seeds a fresh start.
        init_from_pretrained(str(cfg.init), module)
    continue_history(run_dir, resume_kimg, loggers)
    finish_only = resume_kimg is not None and resume_kimg * 1000 >= float(cfg.kimg) * 1000
    if finish_only:
        drop_end_of_training_records(run_dir, ckpt_path, resume_kimg)
        trainer.callbacks.append(FinishOnly(resume_kimg))
    # Last, once the config is known good: W&B starts its run on the first call.
    info = run_info(cfg, plain)
    for logger in loggers:
        logger.log_hyperparams(info)
    return Run(cfg, run_dir, trainer, module, datamodule, metrics, ckpt_path, finish_only)


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


# What build_run passes to each top-level target besides the node's own keys.
BUILD_GIVEN: dict[str, tuple[str, ...]] = {
    "model": ("diffusion", "adaptive", "augment", "total_kimg"),
    "datamodule": ("dataset",),
    "metrics": ("reference_dataset",),
    "trainer": ("callbacks", "logger"),
}
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


def build_module(cfg: DictConfig, dataset_size: int | None) -> L.LightningModule:
    """The DiffusionGAN of ``cfg`` as a training run builds it (``dgan.bench`` times this one):
    its diffusion and the adaptive callback it owns, its augmentation, D's timestep input from
    the diffusion's t_max, and a loss sized by the training set.

    Args:
        cfg: the composed run config.
        dataset_size: images in the training set, x-flips included (InsGen's queues take 5 %
            of it; None leaves the loss's own setting).
    """
    diffusion = build(cfg.diffusion, "diffusion") if cfg.get("diffusion") else None
    adaptive = build(cfg.adaptive, "adaptive") if diffusion and cfg.get("adaptive") else None
    augment = build(cfg.augment, "augment") if cfg.get("augment") else None
    return build(cfg.model, "model", diffusion=diffusion, adaptive=adaptive, augment=augment,
                 total_kimg=float(cfg.kimg), **_discriminator_timesteps(cfg.model, diffusion),
                 **_loss_dataset_size(cfg.model, dataset_size))


def _discriminator_timesteps(model: DictConfig, diffusion: Any) -> dict[str, Any]:
    """The model's D keys that follow the diffusion (:mod:`dgan.config.timestep_input`)."""
    settings = discriminator_t_settings(model.get("discriminator"),
                                        None if diffusion is None else int(diffusion.t_max))
    return {"discriminator": settings} if settings else {}


def _loss_dataset_size(model: DictConfig, dataset_size: int | None) -> dict[str, Any]:
    """A loss that sizes state by the data (InsGen's queues: 5% of the images) gets the
    training set's length, x-flips included, when its config has a ``dataset_size: null``."""
    node = model.get("loss")
    if dataset_size is None or node is None or "dataset_size" not in node \
            or node.dataset_size is not None:
        return {}
    return {"loss": {"dataset_size": int(dataset_size)}}


def _reference_dataset(cfg: DictConfig, dataset: Any) -> Any:
    """The reals of the metrics: the training set, or with ``metrics.reference=full`` the
    dataset its ``max_size`` subset was drawn from (the limited-data protocol)."""
    if cfg.metrics.get("reference", "train") != "full" or cfg.dataset.get("max_size") is None:
        return dataset
    full = OmegaConf.merge(cfg.dataset, {"max_size": None})
    return build(full, "dataset")


def _check_metric_generator(node: Any, G: Any) -> None:
    """A metric that needs a kind of generator (``cacc_digits*``: one conditioned on the digit
    labels) stops here, before a step of training."""
    if node is None or not isinstance(node.get("metrics"), ListConfig):
        return
    from dgan.metrics.class_accuracy import check_class_accuracy

    try:
        check_class_accuracy(node.metrics, G, key="metrics.metrics")
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_metric_domain(node: Any, dataset: Any) -> None:
    """A metric on a dataset-specific feature network (the digits classifier) stops here when
    the run's images are not that dataset's, before a step of training."""
    if node is None or not isinstance(node.get("metrics"), ListConfig):
        return
    from dgan.metrics.domain import MetricDomainError, check_metric_domain

    try:
        check_metric_domain(node.metrics, dataset, "metrics.metrics")
    except MetricDomainError as err:
        raise ConfigError(str(err)) from None


def _check_data_matches_model(dataset: Any, module: Any) -> None:
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


def continue_history(run_dir: Path, resume_kimg: float | None, loggers: list[Any]) -> None:
    """Make the run directory's history continue at the checkpoint (before any logging).

    The record files keep what was written up to ``resume_kimg`` (a fresh start keeps none),
    and a W&B logger continues the run the directory recorded.

    Args:
        run_dir: the run directory.
        resume_kimg: kimg of the checkpoint the run resumes from; None for a fresh start.
        loggers: the run's loggers.
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from dgan.tracking.records import KimgWandbLogger
    from dgan.tracking.run_history import read_wandb_run_id, trim_history

    if rank_zero_only.rank == 0:  # the other ranks write no record
        trim_history(run_dir, resume_kimg)
    run_id = read_wandb_run_id(run_dir) if resume_kimg is not None else None
    for logger in loggers:
        if run_id is not None and isinstance(logger, KimgWandbLogger):
            logger.resume_run(run_id)


class FinishOnly(L.Callback):
    """Ends a resumed run before its first step: the checkpoint is at the run's last kimg, and
    only the end of training (final evaluation, summary, last pictures) is missing.

    Args:
        kimg: the checkpoint's kimg.
    """

    def __init__(self, kimg: float) -> None:
        self.kimg = kimg

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            print(f"[dgan] resume: the run reached its last kimg ({self.kimg:g}) but has no "
                  "final evaluation; running it (no training step)", flush=True)
        trainer.should_stop = True


def _final_evaluation_missing(run_dir: Path, metrics: MetricsCallback | None) -> bool:
    """Whether the run's end-of-training evaluation is not recorded: it has metrics, and
    ``metrics_summary.json`` is missing or holds no final values (a run killed between its last
    checkpoint and its final evaluation)."""
    from dgan.callbacks.metrics import SUMMARY_FILE

    if metrics is None or not metrics.metrics:
        return False
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return True
    return not isinstance(summary, dict) or not summary.get("final")


def drop_end_of_training_records(run_dir: Path, ckpt_path: str, kimg: float) -> None:
    """Drop the records written after the run's final checkpoint (its end-of-training
    evaluation, at the same kimg): the resumed run that completes it writes them again.

    Args:
        run_dir: the run directory.
        ckpt_path: the final checkpoint.
        kimg: its kimg, the run's last.
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from dgan.callbacks.checkpoint import HISTORY_KEY
    from dgan.files.checkpoints import read_checkpoint
    from dgan.tracking.run_history import trim_to_counts

    if rank_zero_only.rank != 0:  # the other ranks write no record
        return
    history = read_checkpoint(ckpt_path, "resume").get(HISTORY_KEY)
    counted_here = (isinstance(history, dict) and isinstance(history.get("counts"), dict)
                    and Path(str(history.get("run_dir"))).resolve() == run_dir.resolve())
    if counted_here:
        trim_to_counts(run_dir, history["counts"])
    else:  # no count of this directory's records (an older checkpoint): metrics.jsonl by kimg
        drop_final_rows(run_dir, kimg)


def drop_final_rows(run_dir: Path, kimg: float) -> None:
    """Drop ``metrics.jsonl`` rows at ``kimg`` (the run's last), which only the final evaluation
    writes: a kill after the row but before the summary would otherwise leave it twice."""
    from dgan.files.run_files import METRICS_FILE

    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            row_kimg = float(json.loads(line).get("kimg"))
        except (ValueError, TypeError, AttributeError):
            kept.append(line)
            continue
        if row_kimg < kimg - 5e-4:  # rows hold kimg to 3 decimals
            kept.append(line)
    if len(kept) != len(lines):
        from dgan.files.atomic import atomic_write_bytes

        atomic_write_bytes(path, "".join(kept).encode())


def _check_resume(ckpt_path: str, kimg: float, module: L.LightningModule | None = None,
                  unfinished: bool = False) -> float:
    """Check that ``ckpt_path`` can continue this run; returns the kimg it holds.

    Args:
        ckpt_path: the checkpoint.
        kimg: the run's length.
        module: the module this config builds (its weights must fit the checkpoint's).
        unfinished: the run's final evaluation is not recorded: a checkpoint at the last kimg
            is taken (the run is finished, not trained further) instead of refused.
    """
    from dgan.files.checkpoints import read_checkpoint

    # One reader for every checkpoint argument: a truncated, empty or foreign file is named
    # in one line, and nothing in it runs (weights_only).
    state = read_checkpoint(ckpt_path, "resume")
    dgan_state = state["dgan"]
    # A checkpoint of another model first: "raise kimg" would not help there.
    if module is not None:
        _check_state_matches(ckpt_path, state.get("state_dict") or {}, module)
    if dgan_state["cur_nimg"] >= kimg * 1000 and not unfinished:
        raise ConfigError(
            f"resume={ckpt_path}: the run already reached kimg={dgan_state['cur_nimg'] / 1000:g} "
            f"of kimg={kimg:g}; raise kimg to train longer"
        )
    return float(dgan_state["cur_nimg"]) / 1000


# The networks ``init=`` copies (optimizers, counters and the diffusion's state start afresh).
INIT_NETWORKS = ("G", "G_ema", "D")
# The module attribute of the loss, whose own state (``loss.*``) ``init=`` offers it.
LOSS_ATTRIBUTE = "loss"


def init_from_pretrained(path: str, module: L.LightningModule) -> list[str]:
    """Copy G, G_ema and D of a checkpoint or network pickle into a new run's module.

    Transfer learning as StyleGAN2-ADA's ``--resume`` from a pickle: the weights only, EMA
    ramp-up off; ``resume=`` is what continues a run. A source without D (a generator-only
    pickle) leaves D as built, and so does it leave the parts of D a network declares optional
    (``optional_state_prefixes``: InsGen's heads) when the source has none of them. A loss with
    state of its own (``init_from``: InsGen's D_ema and queues) takes what of it the source has.
    Returns what was copied.

    Args:
        path: a ``.ckpt`` written by dgan.train or dgan.convert, or a ``.pkl`` network pickle.
        module: the module of the run.
    """
    from dgan.inference.loading import read_any_checkpoint

    saved = read_any_checkpoint(path, "init")["state_dict"]
    own = module.state_dict()
    copied, shown = [], []
    for net in INIT_NETWORKS:
        prefix = f"{net}."
        part = {k: v for k, v in saved.items() if k.startswith(prefix)}
        if not part:
            continue
        own_part = {k: v for k, v in own.items() if k.startswith(prefix)}
        optional = tuple(prefix + p for p in
                         getattr(getattr(module, net, None), "optional_state_prefixes", ()))
        label = net
        if optional and not any(k.startswith(optional) for k in part):
            own_part = {k: v for k, v in own_part.items() if not k.startswith(optional)}
            kept = ", ".join(p[len(prefix):].rstrip(".") for p in optional)
            label = f"{net} ({kept} as built)"
        problem = state_mismatches(part, own_part)
        if problem is not None:
            raise ConfigError(f"init={path}: {net} does not fit this model ({problem}); "
                              "choose the model config the weights were trained with")
        copied.append(net)
        shown.append(label)
        module.load_state_dict(part, strict=False)
    if "G" not in copied and "G_ema" not in copied:
        raise ConfigError(f"init={path}: holds no generator weights (G.* or G_ema.*)")
    take = getattr(getattr(module, LOSS_ATTRIBUTE, None), "init_from", None)
    if take is not None:
        prefix = f"{LOSS_ATTRIBUTE}."
        try:
            taken = take({k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)},
                         path)
        except ValueError as err:
            raise ConfigError(f"init={path}: {err}") from err
        copied += taken
        shown += taken
    module.ema_rampup = None
    print(f"[dgan] init: {', '.join(shown)} from {path}", flush=True)
    return copied


def _check_state_matches(ckpt_path: str, saved: dict[str, Any], module: L.LightningModule
                         ) -> None:
    """The checkpoint's weights must fit the module this config builds: same keys, shapes."""
    shown = state_mismatches(saved, module.state_dict())
    if shown is not None:
        raise ConfigError(
            f"resume={ckpt_path}: the checkpoint does not fit this model ({shown}); resume with "
            "the model, dataset and diffusion settings the run was started with"
        )
