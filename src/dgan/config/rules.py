"""What each config value may be: the one table of value rules, checked before anything is built.

The targets' signatures say the type of a value (:mod:`dgan.config.instantiation` checks it);
this table says what a signature cannot: ranges, positive sizes, choices, finite numbers and the
relations between two keys of one node. :func:`dgan.config.instantiation.check_config` applies
it to every leaf of the composed config, so a value that cannot work stops the run in one line
(``error: KEY=VALUE is not valid; expected ...``) before any object exists.

Rules are looked up by config key (top-level keys, which have no target), then by target and
parameter name (the target in any spelling that names the same class), then by parameter name
alone (``lr``, ``seed``, ``batch_size`` mean the same in every target). A command's options
declare their own rules (``RULES`` of its options dataclass, checked by
:mod:`dgan.config.cli_args`). Numbers are finite everywhere: nan and inf are refused whatever
the key, as no dgan setting gives them a meaning.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

# Widths, sizes and counts above this allocate more than any machine has (a typo such as 1e30).
MAX_COUNT = 2**20
# The longest diffusion chain (the reference uses T <= 1000); the schedule has T + 1 entries.
MAX_CHAIN = 100_000
# Integers beyond this cannot be held exactly in a float (a YAML 1e30 is a float).
MAX_EXACT_INT = 2**53
# Largest seed every generator takes (NumPy's seeds are 32-bit).
MAX_SEED = 2**32 - 1
# The longest run: 40 000 times the longest published schedule (FFHQ, 25 000 kimg), where the
# image counter (kimg x 1000) is still exact in a float. 1e30 would only look like a run.
MAX_KIMG = 10**9
# Truncation psi: 1 is none, 0 the mean image, outside [0, 1] it extrapolates away from the
# mean; beyond +-2 the images leave what G learned (1e9 gives blank or saturated pictures).
MAX_TRUNCATION = 2.0
# The precisions dgan's networks run in: 32-bit, or mixed 16-bit over 32-bit weights. The
# "-true" ones other than 32 (64-true, bf16-true, 16-true) cast the weights but not the latents
# the module draws, and fail on the first layer.
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16")


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An int, or a float with an exact integral value (from an interpolation's arithmetic)."""
    if isinstance(value, bool) or not is_number(value):
        return False
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer() and abs(value) < MAX_EXACT_INT
    return True


def _show(bound: float) -> str:
    """A bound as written in a config: 1048576, not 1.04858e+06."""
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e16 else f"{bound:g}"


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"in {left}{_show(low)}, {_show(high)}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_show(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_show(high)}"
    return ""


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one value may be; ``accepts`` judges it, ``text`` says it in words.

    Args:
        kind: ``int``, ``number``, ``choice``, ``text``, ``pair``, ``names`` or ``custom``.
        low, high: the range of a number (None: open-ended).
        low_open, high_open: whether the bound itself is excluded.
        choices: the valid strings, or ``module:NAME`` of a tuple that lists them.
        null: whether null (None) is valid too.
        special: integers valid outside the range (-1: "all" or "no limit").
        power_of_two: integers must be powers of two.
        check: ``custom`` rules: a function value -> bool.
        words: ``custom`` rules: what is valid, in words.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | str | None = None
    null: bool = False
    special: tuple[int, ...] = ()
    power_of_two: bool = False
    check: Callable[[Any], bool] | None = None
    words: str = ""

    def options(self) -> tuple[str, ...]:
        """The valid strings of a choice (resolved from ``module:NAME`` on first use)."""
        if isinstance(self.choices, str):
            from hydra.utils import get_object

            module, _, name = self.choices.partition(":")
            return tuple(get_object(f"{module}.{name}"))
        return tuple(self.choices or ())

    def in_range(self, value: float) -> bool:
        if self.low is not None and (value < self.low or self.low_open and value == self.low):
            return False
        return not (self.high is not None and (
            value > self.high or self.high_open and value == self.high))

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (plain YAML data) is valid."""
        if value is None:
            return self.null
        if self.kind == "int":
            if not is_integer(value):
                return False
            if int(value) in self.special:
                return True
            if self.power_of_two and (int(value) < 1 or int(value) & (int(value) - 1)):
                return False
            return self.in_range(value)
        if self.kind == "number":
            return is_number(value) and math.isfinite(value) and self.in_range(value)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.options()
        if self.kind == "text":
            return isinstance(value, str) and (value != "" or self.low == 0)
        if self.kind == "pair":
            return (isinstance(value, list | tuple) and len(value) == 2 and all(
                is_number(v) and math.isfinite(v) and self.in_range(v) for v in value))
        if self.kind == "names":
            items = value.split(",") if isinstance(value, str) else value
            return (isinstance(items, list | tuple) and len(items) > 0
                    and all(isinstance(v, str) and v.strip() in self.options() for v in items)
                    and len(set(items)) == len(items))
        if self.kind == "custom":
            assert self.check is not None
            return bool(self.check(value))
        raise ValueError(f"unknown rule kind {self.kind!r}")

    def text(self) -> str:
        """What is valid, in words (``an integer >= 1``, ``one of linear, quad``)."""
        null = " or null" if self.null else ""
        span = _range_text(self.low, self.high, self.low_open, self.high_open)
        if self.kind == "int":
            noun = "a power of two" if self.power_of_two else "an integer"
            extra = "".join(f" or {s}" for s in self.special)
            return f"{noun}{' ' + span if span else ''}{extra}{null}"
        if self.kind == "number":
            # A range closed on both sides says "finite" by itself.
            finite = "" if self.low is not None and self.high is not None else "finite "
            return f"a {finite}number{' ' + span if span else ''}{null}"
        if self.kind == "choice":
            return "one of " + ", ".join(self.options()) + null
        if self.kind == "text":
            return ("a string" if self.low == 0 else "a non-empty string") + null
        if self.kind == "pair":
            return f"two numbers {span}, e.g. [0.0, 0.99]{null}"
        if self.kind == "names":
            return "a list of distinct names from " + ", ".join(self.options()) + null
        return self.words + null


def Int(low: float | None = None, high: float | None = None, *, null: bool = False,
        special: tuple[int, ...] = (), power_of_two: bool = False) -> Rule:  # noqa: N802
    """An integer in [low, high]."""
    return Rule("int", low, high, null=null, special=special, power_of_two=power_of_two)


def Num(low: float | None = None, high: float | None = None, *, low_open: bool = False,  # noqa: N802
        high_open: bool = False, null: bool = False) -> Rule:
    """A finite number in the range."""
    return Rule("number", low, high, low_open, high_open, null=null)


def Choice(choices: tuple[str, ...] | str, *, null: bool = False) -> Rule:  # noqa: N802
    """One of the strings (a tuple, or ``module:NAME`` of one)."""
    return Rule("choice", choices=choices, null=null)


def Text(*, empty: bool = False, null: bool = False) -> Rule:  # noqa: N802
    """A string (non-empty unless ``empty``)."""
    return Rule("text", low=0 if empty else None, null=null)


# The sizes of a network or a data set: at least one, at most MAX_COUNT.
SIZE = Int(1, MAX_COUNT)
COUNT = Int(0, MAX_COUNT)
SEED = Int(0, MAX_SEED)
PROBABILITY = Num(0, 1)
NON_NEGATIVE = Num(0)
POSITIVE = Num(0, low_open=True)
PATH = Text()
RESOLUTION = Int(4, 2**14, power_of_two=True)
CHANNELS = Int(1, 4)


def _devices(value: Any) -> bool:
    """Lightning's ``devices``: an int >= 1, -1 (all), "auto", "N", "0,1" or a list of ids."""
    if is_integer(value):
        return int(value) >= 1 or int(value) == -1
    if isinstance(value, str):
        text = value.strip()
        if text == "auto" or text == "-1":
            return True
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            return False
        return len(parts) > 1 or text.endswith(",") or int(parts[0]) >= 1
    if isinstance(value, list):
        return len(value) > 0 and all(is_integer(v) and int(v) >= 0 for v in value)
    return False


def _precision(value: Any) -> bool:
    """One of :data:`PRECISIONS` (YAML reads 32 and 16 as integers)."""
    return not isinstance(value, bool) and str(value) in PRECISIONS


def _signal_names(value: Any) -> bool:
    """A list of catchable signal names (SIGKILL and SIGSTOP cannot be caught)."""
    import signal

    names = set(signal.Signals.__members__) - {"SIGKILL", "SIGSTOP"}
    return isinstance(value, list) and all(isinstance(v, str) and v in names for v in value)


# Parameters that mean the same in every target that takes them.
BY_NAME: dict[str, Rule] = {
    # torch.optim, checked as torch.optim itself checks them
    "lr": NON_NEGATIVE,
    "betas": Rule("pair", 0, 1, high_open=True),
    "eps": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE,
    "momentum": PROBABILITY,
    # data, batches, sizes
    "seed": SEED,
    "batch_size": SIZE,
    "batch_gpu": Int(1, MAX_COUNT, null=True),
    "num_workers": Int(0, 256),
    "prefetch_factor": Int(1, 64),
    "max_size": Int(1, MAX_COUNT * 64, null=True),
    "holdout": Int(0, MAX_COUNT * 64),
    "size": SIZE,
    "std": POSITIVE,
    "resolution": RESOLUTION,
    "img_resolution": RESOLUTION,
    "img_channels": CHANNELS,
    "c_dim": COUNT,
    "z_dim": SIZE,
    "w_dim": SIZE,
    "in_dim": SIZE,
    "out_dim": SIZE,
    "hidden": SIZE,
    "num_layers": SIZE,
    "mapping_layers": SIZE,
    "mapping_lr_multiplier": POSITIVE,
    "cmap_dim": Int(1, MAX_COUNT, null=True),
    "head_dim": SIZE,
    "channel_base": SIZE,
    "channel_max": SIZE,
    "num_fp16_res": Int(0, 14),
    "conv_clamp": Num(0, low_open=True, null=True),
    "mbstd_group_size": Int(1, MAX_COUNT, null=True),
    "mbstd_num_channels": Int(1, MAX_COUNT),
    "t_conditioning": Choice("dgan.networks.conditioning:CONDITIONING_MODES"),
    "t_max": Int(1, MAX_CHAIN),
    "t_min": Int(1, MAX_CHAIN),
    "architecture": Choice(("orig", "skip", "resnet")),
    # losses
    "r1_gamma": NON_NEGATIVE,
    "pl_weight": NON_NEGATIVE,
    "pl_batch_shrink": SIZE,
    "pl_decay": PROBABILITY,
    "style_mixing_prob": PROBABILITY,
    # schedules of a run (kimg)
    "every_kimg": NON_NEGATIVE,
    "ada_kimg": POSITIVE,
    "interval": Int(1, MAX_COUNT),
    "num_images": SIZE,
    "num_points": SIZE,
    "num_samples": SIZE,
    "p": PROBABILITY,
    # files
    "run_dir": PATH,
    "dirpath": PATH,
    "save_dir": PATH,
    "cache_dir": Text(null=True),
    "weights_dir": Text(null=True),
}

# Parameters whose meaning depends on the target (they win over BY_NAME).
BY_TARGET: dict[str, dict[str, Rule]] = {
    "dgan.diffusion.Diffusion": {
        "beta_schedule": Choice("dgan.diffusion.schedules:SCHEDULES"),
        "beta_start": Num(0, 1, low_open=True, high_open=True),
        "beta_end": Num(0, 1, low_open=True, high_open=True),
        "noise_std": POSITIVE,
        "noise_type": Choice("dgan.diffusion.process:NOISE_TYPES"),
        "ts_dist": Choice("dgan.diffusion.process:TS_DISTS"),
        "t_sampling": Choice("dgan.diffusion.process:T_SAMPLINGS"),
        "pool_size": SIZE,
        "clean_fraction": Num(0, 1, high_open=True),
        "p_init": PROBABILITY,
    },
    "dgan.callbacks.adaptive_probability.AdaptiveProbability": {
        "ada_maxp": PROBABILITY,
        "d_target": PROBABILITY,
        "ada_kimg": POSITIVE,
    },
    "dgan.augment.DiffAugment": {
        "policy": Rule("names", choices="dgan.augment.diffaugment:POLICIES"),
        "translation_ratio": PROBABILITY,
        "cutout_ratio": PROBABILITY,
    },
    "dgan.augment.AdaptiveAugment": {
        **{name: NON_NEGATIVE for name in (
            "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness",
            "contrast", "lumaflip", "hue", "saturation", "xint_max", "scale_std", "rotate_max",
            "aniso_std", "xfrac_std", "brightness_std", "contrast_std", "hue_max",
            "saturation_std")},
        "filter_taps": Int(4, 64),
        "filter_beta": NON_NEGATIVE,
    },
    "dgan.networks.stylegan2.Generator": {"w_avg_beta": PROBABILITY},
    "dgan.networks.mlp.MLPGenerator": {"activation": Choice("dgan.networks.mlp:ACTIVATIONS")},
    "dgan.networks.projected.FastGANGenerator": {
        "img_resolution": Rule(
            "custom", words="one of 32, 64, 128, 256, 512, 1024",
            check=lambda v: is_integer(v) and int(v) in (32, 64, 128, 256, 512, 1024)),
        "ngf": SIZE,
    },
    "dgan.networks.projected.ProjectedDiscriminator": {
        "diffusion_position": Choice("dgan.networks.projected.discriminator:DIFFUSION_POSITIONS"),
        "feature_weights": Text(),
        "resize": Int(4, 4096, null=True),
        "cout": SIZE,
        "embed_dim": SIZE,
        "disc_resolution": RESOLUTION,
        "ndf": Int(1, MAX_COUNT, null=True),
    },
    "dgan.training.losses.InsGenLoss": {
        "real_weight": NON_NEGATIVE,
        "fake_weight": NON_NEGATIVE,
        "fake_on_g_weight": NON_NEGATIVE,
        "temperature": POSITIVE,
        "latent_noise": NON_NEGATIVE,
        "real_queue_size": Int(1, MAX_COUNT, null=True),
        "fake_queue_size": Int(1, MAX_COUNT, null=True),
        "queue_fraction": Num(0, 1, low_open=True),
        "dataset_size": Int(1, MAX_COUNT * 64, null=True),
    },
    "dgan.training.module.DiffusionGAN": {
        "g_reg_interval": Int(1, MAX_COUNT, null=True),
        "d_reg_interval": Int(1, MAX_COUNT, null=True),
        "ema_kimg": NON_NEGATIVE,
        "ema_rampup": Num(0, low_open=True, null=True),
    },
    "dgan.data.toy.ToyDataset": {"name": Choice("dgan.data.toy:TOY_DATASETS"),
                                 "size": Int(1, 10**7)},
    "dgan.data.images.ImageDataset": {"path": Text(null=True),
                                      "resolution": Int(4, 2**14, power_of_two=True, null=True),
                                      "name": Text(null=True),
                                      "cache_mb": Num(0)},
    "dgan.callbacks.metrics.MetricsCallback": {"reference": Choice(("train", "full"))},
    "dgan.callbacks.progress.KimgProgress": {"refresh_rate": COUNT, "tick_kimg": POSITIVE},
    "dgan.callbacks.preemption.PreemptionCheckpoint": {
        "exit_code": Int(0, 255),
        "signals": Rule("custom", check=_signal_names,
                        words="a list of signal names, e.g. [SIGTERM, SIGUSR1, SIGINT]")},
    "dgan.callbacks.throughput.Throughput": {"every_n_steps": Int(1, MAX_COUNT, null=True)},
    "dgan.callbacks.diffusion_diagnostics.DiffusionDiagnostics": {
        "num_buckets": Int(1, 1000), "history_every_n_steps": Int(1, MAX_COUNT, null=True)},
    "dgan.callbacks.overfitting.OverfittingMonitor": {
        "picture_every_kimg": NON_NEGATIVE, "bucket_samples": SIZE, "num_buckets": Int(1, 1000)},
    "dgan.callbacks.toy_figure.ToyFigure": {"ts": Rule(
        "custom", null=True, words="a list of integers >= 0",
        check=lambda v: isinstance(v, list) and all(is_integer(x) and x >= 0 for x in v))},
    "dgan.callbacks.augment_grid.AugmentGrid": {"ps": Rule(
        "custom", words="a list of numbers in [0, 1]",
        check=lambda v: isinstance(v, list) and len(v) > 0 and all(
            is_number(x) and 0 <= x <= 1 for x in v))},
    "dgan.tracking.run_history.RunCSVLogger": {"name": Text(empty=True),
                                               "version": Text(empty=True)},
    "lightning.pytorch.loggers.TensorBoardLogger": {"name": Text(empty=True),
                                                    "version": Text(empty=True)},
    "dgan.tracking.loggers.wandb_logger": {
        "project": Text(), "name": Text(null=True), "group": Text(null=True),
        "mode": Choice("dgan.tracking.loggers:WANDB_MODES", null=True)},
    "lightning.Trainer": {
        "accelerator": Choice(("cpu", "gpu", "cuda", "mps", "tpu", "auto")),
        "devices": Rule("custom", check=_devices,
                        words='an integer >= 1, -1 (all), "auto", or device ids like "0,1"'),
        "num_nodes": Int(1, 100_000),
        "precision": Rule("custom", check=_precision, words="one of " + ", ".join(PRECISIONS)),
        "max_epochs": Int(0, None, special=(-1,), null=True),
        "max_steps": Int(0, None, special=(-1,)),
        "log_every_n_steps": Int(1, MAX_COUNT, null=True),
        "default_root_dir": PATH,
        "strategy": Text(),
        "gradient_clip_val": Num(0, null=True),
        "accumulate_grad_batches": Int(1, MAX_COUNT),
    },
}
for _target in ("dgan.diffusion.feature_noise.FeatureDiffusion",):
    BY_TARGET[_target] = {**BY_TARGET["dgan.diffusion.Diffusion"], "max_noisy_slots": SIZE}
# Targets that take another target's keyword arguments (**kwargs passed on).
BY_TARGET["dgan.networks.insgen.InstanceDiscriminator"] = BY_TARGET.setdefault(
    "dgan.networks.stylegan2.Discriminator", {})
BY_TARGET["dgan.training.losses.StyleGAN2Loss"] = {}

# Keys of the run config with no target (the run's own scalars).
BY_KEY: dict[str, Rule] = {
    "kimg": Num(0, MAX_KIMG, low_open=True),
    "seed": SEED,
    "resume": Text(null=True),
    "init": Text(null=True),
    "overwrite": Rule("custom", check=lambda value: isinstance(value, bool),
                      words="true or false"),
    "ada_share": Num(0, 1, low_open=True, null=True),
    "points_per_run": SIZE,
    "run_name": Text(),
    "paths.output_dir": PATH,
    "paths.cache_dir": PATH,
}


# Truncation psi of the commands that draw from a generator (their options declare it).
TRUNCATION = Num(-MAX_TRUNCATION, MAX_TRUNCATION)
# The class of an optional output directory or label of a command.
OPTIONAL_TEXT = Text(null=True)
CLASS_INDEX = Int(0, MAX_COUNT, null=True)


@functools.cache
def resolve_target(target: str) -> Any:
    """The class or function a ``_target_`` string names (None: it names nothing)."""
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:  # noqa: BLE001 - an unknown target has no rules; building it names it
        return None


T = TypeVar("T")


def declared_for(table: Mapping[str, T], target: str) -> T | None:
    """The entry of ``table`` for ``target`` in any spelling: the key that names the same class
    or function (``dgan.diffusion.Diffusion`` is ``dgan.diffusion.process.Diffusion``). Only
    keys with the target's own name are resolved, so a lookup imports nothing else."""
    if target in table:
        return table[target]
    obj = resolve_target(target)
    name = getattr(obj, "__name__", None)
    if obj is None or name is None:
        return None
    for key, value in table.items():
        if key.rpartition(".")[2] == name and resolve_target(key) is obj:
            return value
    return None


def rule_for(key: str, target: str | None, name: str) -> Rule | None:
    """The rule of the value at ``key`` (parameter ``name`` of ``target``), or None."""
    if key in BY_KEY:
        return BY_KEY[key]
    if target is not None:
        own = declared_for(BY_TARGET, target) or {}
        if name in own:
            return own[name]
        module = getattr(resolve_target(target), "__module__", None) or target
        if module.startswith(("torch.optim", "dgan.", "lightning.")) and name in BY_NAME:
            return BY_NAME[name]
    return None


# Relations between two keys of one node: (target, check) where check(node) returns None or
# (key, value, what is valid) for the key to name.
Relation = Callable[[Mapping[str, Any]], "tuple[str, Any, str] | None"]


def _beta_order(node: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    start, end = node.get("beta_start"), node.get("beta_end")
    if is_number(start) and is_number(end) and not start <= end:
        return "beta_end", end, f"a number in [beta_start, 1) (beta_start={start:g})"
    return None


def _t_order(node: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    low, high = node.get("t_min"), node.get("t_max")
    if is_number(low) and is_number(high) and not low <= high:
        return "t_max", high, f"an integer >= t_min ({low})"
    return None


def _batch_split(node: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    batch, gpu = node.get("batch_size"), node.get("batch_gpu")
    if is_integer(batch) and is_integer(gpu) and gpu > batch:
        return "batch_gpu", gpu, f"an integer <= batch_size ({batch}) or null"
    return None


def _precision_on_cpu(node: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    precision, accelerator = str(node.get("precision")), str(node.get("accelerator", "auto"))
    if precision not in ("16", "16-mixed", "16-true"):
        return None
    if accelerator == "auto":
        import torch

        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "cpu":
        return ("precision", node.get("precision"),
                "32-true on a CPU (float16 needs a GPU: trainer=gpu; Lightning would turn it "
                "into bf16, which a CPU without native bf16 does not finish)")
    return None


def _devices_on_cpu(node: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    """Lightning's CPU accelerator takes a count of processes, not -1 or device ids."""
    devices = node.get("devices")
    if str(node.get("accelerator")) != "cpu":
        return None
    text = str(devices).strip()
    if text == "auto" or (is_integer(devices) and int(devices) >= 1) or (
            isinstance(devices, str) and text.isdigit() and int(text) >= 1):
        return None
    return ("devices", devices, "a number of processes >= 1 (or auto) with "
            "trainer.accelerator=cpu; -1 and device ids are for GPUs")


RELATIONS: dict[str, tuple[Relation, ...]] = {
    "dgan.diffusion.Diffusion": (_beta_order, _t_order),
    "dgan.diffusion.feature_noise.FeatureDiffusion": (_beta_order, _t_order),
    "dgan.training.module.DiffusionGAN": (_batch_split,),
    "lightning.Trainer": (_precision_on_cpu, _devices_on_cpu),
}


def relation_problems(target: str, node: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """What the relations of ``target`` find wrong in ``node`` (plain data)."""
    found = [check(node) for check in declared_for(RELATIONS, target) or ()]
    return [f for f in found if f is not None]


def rule_at(cfg: Any, key: str) -> Rule | None:
    """The rule of the leaf at dotted ``key`` of a composed config (None: no rule)."""
    from omegaconf import DictConfig, OmegaConf

    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    target = str(node["_target_"]) if isinstance(node, DictConfig) and "_target_" in node \
        else None
    return rule_for(key, target, name)
