"""The run config outside a Hydra app (notebooks, scripts): ``conf/train.yaml`` composed with
``key=value`` overrides, exactly as ``python -m dgan.train KEY=VALUE ...`` would compose it.

    cfg = compose_config(["experiment=gaussians25", "kimg=50"], output_dir="runs/toy")
    run = dgan.assembly.builder.build_run(cfg)
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


# Hydra's flags after which the arguments are no plain run (help pages, shell completion, another
# config): the override check leaves them to Hydra.
_FLAGS_LEFT_TO_HYDRA = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info",
                        "-i", "--shell-completion", "-sc", "--config-path", "-cp",
                        "--config-name", "-cn", "--config-dir", "-cd", "--package", "-p",
                        "--experimental-rerun", "--resolve")
_MULTIRUN_FLAGS = ("-m", "--multirun", "--run", "-r")


def check_overrides(argv: Sequence[str]) -> None:
    """Compose ``conf/train.yaml`` with the command line's overrides, as Hydra is about to, and
    turn Hydra's own errors into one line in dgan's form (:class:`ConfigError`): an unknown key
    with the closest valid keys, an unknown group choice with the valid ones, ``+`` on a key
    that exists. A sweep (``a=1,2``, ``range``) is composed at its first value; an interval
    sweep (Optuna) is left to the sweeper.

    Args:
        argv: the arguments of ``python -m dgan.train`` (after :func:`dgan.train.hydra_argv`).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from dgan.core.errors import ConfigError

    if any(arg.partition("=")[0] in _FLAGS_LEFT_TO_HYDRA for arg in argv):
        return
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    texts = [arg for arg in argv if arg not in _MULTIRUN_FLAGS]
    parser = OverridesParser.create()
    overrides = []
    for text in texts:
        if "=" in text and not text.lstrip("+~").partition("=")[0].strip():
            raise ConfigError(f"{text}: no key before '='; write KEY=VALUE, e.g. kimg{text}")
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as err:
            raise ConfigError(f"{text}: cannot read this override ({_first_line(err)}); write "
                              "key=value, +key=value for a new key, ~key to remove one") from None
        if override.is_sweep_override():
            if not multirun:
                raise ConfigError(f"{text}: a sweep runs only as a multirun; add -m to run one "
                                  "job per value (or quote a value that holds commas)")
            try:
                first = next(iter(override.sweep_string_iterator()))
            except (HydraException, StopIteration):
                continue  # an interval sweep: the sweeper draws its values
            text = f"{override.get_key_element()}={first}"
        overrides.append(text)
    try:
        _compose(overrides)
    except Exception as err:  # noqa: BLE001 - every composition error becomes one line
        raise ConfigError(explain_override_error(err, overrides)) from None


def _compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dgan.config.paths import CONFIG_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(CONFIG_DIR).resolve()),
                                   version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _override_for(key: str, overrides: Sequence[str], value: str | None = None) -> str:
    """The last override that names ``key`` (with ``value``, when given) as the user wrote
    it, or ``key`` itself."""
    for text in reversed(overrides):
        name, _, given = text.lstrip("+~").partition("=")
        if name.split("@")[0] == key and (value is None or given == value):
            return text
    return key


def _keys_near(key: str, overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """The keys beside ``key`` in the config composed without it, and the closest of them."""
    import difflib

    parent, _, name = key.rpartition(".")
    rest = [t for t in overrides if t.lstrip("+~").partition("=")[0].split("@")[0] != key]
    try:
        cfg = _compose(rest)
    except Exception:  # noqa: BLE001 - the listing is extra help, never a second error
        return [], []
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not isinstance(node, DictConfig):
        return [], []
    keys = [str(k) for k in node if str(k) != "hydra" and not str(k).startswith("_")]
    close = difflib.get_close_matches(name, keys, n=3, cutoff=0.6)
    prefix = f"{parent}." if parent else ""
    return [prefix + k for k in keys], [prefix + k for k in close]


def _trainer_hint(key: str, given: str) -> str:
    """For a ``lightning.Trainer`` argument the chosen trainer config does not set: how to add
    it, and the trainer configs that set it (``trainer.strategy=ddp``: trainer=ddp|ddp_cpu)."""
    import inspect

    group, _, name = key.partition(".")
    if group != "trainer" or "." in name:
        return ""
    try:
        import lightning

        takes = name in inspect.signature(lightning.Trainer).parameters
    except Exception:  # noqa: BLE001 - the hint is extra help, never a second error
        return ""
    if not takes:
        return ""
    from omegaconf import OmegaConf

    from dgan.config.paths import CONFIG_DIR

    setting = sorted(path.stem for path in (Path(CONFIG_DIR) / group).glob("*.yaml")
                     if name in OmegaConf.load(path))
    value = given.partition("=")[2]
    route = f"choose trainer={'|'.join(setting)} or " if setting else ""
    return f"; this trainer config sets no {name}: {route}add it with +{key}={value}"


def explain_override_error(err: BaseException, overrides: Sequence[str]) -> str:
    """Hydra's error about an override, in one line naming the override and what is valid."""
    import re

    from hydra.errors import MissingConfigException

    from dgan.core.messages import closest_first, closest_text, listed

    text = str(err)
    if isinstance(err, MissingConfigException) or "Could not find '" in text:
        match = re.search(r"Could not find '([^']+)'", text)
        missing = match.group(1) if match else "?"
        group, _, choice = missing.rpartition("/")
        options = list(getattr(err, "options", None) or [])
        if group and options:

            given = _override_for(group, overrides, choice)
            given = given if "=" in given else f"{group}={choice}"
            return listed(
                f"{given}: no {group} config named {choice!r}{closest_text(choice, options)}",
                "valid choices", closest_first(choice, options))
        return f"{missing}: no such config ({_first_line(err)})"
    match = re.search(r"Could not override '([^']+)'", text)
    if match:
        key = match.group(1)
        near, close = _keys_near(key, overrides)
        given = _override_for(key, overrides)
        head = f"{given}: unknown key"
        if close:
            head += f"; closest valid keys: {', '.join(close)}"
        head += _trainer_hint(key, given)
        return listed(head, "valid keys", near) if near else head
    match = re.search(r"An item is already at '([^']+)'", text)
    if match:
        key = match.group(1)
        given = _override_for(key, overrides)
        value = given.partition("=")[2]
        return (f"{given}: {key} exists already, and + only adds a new key; write "
                f"{key}={value}")
    match = re.search(r"Could not (?:delete|append to) .*?'([^']+)'", text)
    if match:
        return f"{_override_for(match.group(1), overrides)}: {_first_line(err)}"
    return _first_line(err)
