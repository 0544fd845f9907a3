"""Fuzz of the launch checks (issue 27): every numeric, string or list leaf of every experiment's
composed config, set to values a user might type by mistake, is either accepted by a rule of
:mod:`dgan.config.rules` (and then the object it configures takes it) or refused in one line
that names the key. No traceback, no hang. Only the checks run (and the cheap objects are built
to confirm an accepted value): no training, no network beyond a small node.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from dgan.assembly.builder import check_run_config
from dgan.config import rules
from dgan.core.errors import ConfigError

from .conftest import CONF, compose_train

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# What a user types by mistake: non-finite numbers, signs, zero, a huge number, an empty string,
# a list where a scalar is meant.
FUZZ_VALUES: list[Any] = [math.nan, math.inf, -math.inf, -1, 0, 1e30, "", [1]]
# Keys that steer Hydra's instantiate rather than reach a target.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
# Targets whose objects are cheap to build: an accepted value is confirmed by building them
# (the metrics callback is left out: it looks for feature-network weights).
BUILT_TO_CONFIRM = (
    "dgan.diffusion.", "dgan.augment.", "dgan.training.losses.", "dgan.callbacks.",
    "dgan.data.toy.", "dgan.data.datamodule.", "dgan.networks.mlp.", "torch.optim.",
    "dgan.tracking.run_history.", "lightning.Trainer",
)
NOT_BUILT = ("dgan.callbacks.metrics.",)
# What build_run passes to a node besides its own keys (here: stand-ins).
GIVEN = {
    "dgan.training.losses.InsGenLoss": {"dataset_size": 1000},
    "dgan.data.datamodule.GANDataModule": {"dataset": [(torch.zeros(2), torch.zeros(0))] * 4},
    "lightning.Trainer": {"callbacks": [], "logger": False},
    "dgan.callbacks.adaptive_probability.AdaptiveProbability": {"driven": torch.nn.Identity()},
}
# The slowest a single check may take (a hang shows as a much longer one).
MAX_SECONDS_PER_CHECK = 5.0


def _leaves(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of the scalar and list leaves (bools and Hydra's keys left out)."""
    keys = []
    for name in node:
        name = str(name)
        key = f"{prefix}{name}"
        if name in HYDRA_KEYS or key == "hydra":
            continue
        child = node._get_node(name)
        if isinstance(child, DictConfig):
            if not child._is_none():
                keys += _leaves(child, f"{key}.")
            continue
        if not isinstance(OmegaConf.select(node, name), bool):  # null leaves too
            keys.append(key)
    return keys


def _read(cfg: DictConfig, key: str) -> bool:
    """Whether anything reads ``key``: a top-level key, a key with a rule of its own, or one
    inside a node that an object is built from. A mapping without a ``_target_`` that no group
    reads (an experiment's ``augment_p:`` settings under ``augment=diffaug``) is not read."""
    if "." not in key or key in rules.BY_KEY:
        return True
    parts = key.split(".")
    for depth in range(1, len(parts)):
        node = OmegaConf.select(cfg, ".".join(parts[:depth]), default=None)
        if isinstance(node, DictConfig) and "_target_" in node:
            return True
    return False


def _target_of(cfg: DictConfig, key: str) -> str | None:
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    return str(node["_target_"]) if isinstance(node, DictConfig) and "_target_" in node else None


def _cases() -> list[tuple[str, str]]:
    """(experiment, key) pairs: each key of each target once (the first experiment that has
    it), so that presets sharing a node are not fuzzed 20 times over."""
    seen: set[tuple[str, str | None]] = set()
    cases = []
    for experiment in EXPERIMENTS:
        cfg = _composed(experiment)
        for key in _leaves(cfg):
            if not _read(cfg, key):
                continue
            ident = (key, _target_of(cfg, key))
            if ident not in seen:
                seen.add(ident)
                cases.append((experiment, key))
    return cases


_COMPOSED: dict[str, DictConfig] = {}


def _composed(experiment: str) -> DictConfig:
    if experiment not in _COMPOSED:
        _COMPOSED[experiment] = compose_train([f"experiment={experiment}"],
                                              Path("/tmp/dgan-fuzz/run"))
    return _COMPOSED[experiment]


def _with(cfg: DictConfig, key: str, value: Any) -> DictConfig:
    changed = copy.deepcopy(cfg)
    with open_dict(changed):
        OmegaConf.update(changed, key, value, merge=False)
    return changed


def _confirm_by_building(cfg: DictConfig, key: str) -> None:
    """Build the node that holds ``key`` when it is cheap: the target must take the value."""
    parent = key.rpartition(".")[0]
    target = _target_of(cfg, key)
    if target is None or not target.startswith(BUILT_TO_CONFIRM) or target.startswith(NOT_BUILT):
        return
    node = OmegaConf.select(cfg, parent)
    if target == "lightning.Trainer" and node.get("accelerator") != "cpu":
        return  # a GPU trainer cannot be built here
    given = {k: v for k, v in GIVEN.get(target, {}).items() if node.get(k) is None}
    built = instantiate(node, **given)
    if target.startswith("torch.optim."):
        built([torch.nn.Parameter(torch.zeros(1))])
    if target.startswith("dgan.data.datamodule."):
        built.train_dataloader()


def _fuzz_one(experiment: str, key: str) -> list[str]:
    """Every fuzz value at ``key``; returns what went wrong (empty: all well)."""
    cfg = _composed(experiment)
    problems = []
    for value in FUZZ_VALUES:
        changed = _with(cfg, key, value)
        start = time.monotonic()
        try:
            check_run_config(changed)
        except ConfigError as err:
            # One line naming the key; a long list of what is valid may follow, indented.
            message, *listed = str(err).splitlines() or [""]
            if key not in message or not all(line.startswith("  ") for line in listed):
                problems.append(f"{key}={value!r}: refused, but not in one line naming the key: "
                                f"{message!r}")
        except Exception as err:  # noqa: BLE001 - a traceback is what the test catches
            problems.append(f"{key}={value!r}: {type(err).__name__}: {err}")
        else:
            rule = rules.rule_at(changed, key)
            if rule is None or not rule.accepts(value):
                problems.append(f"{key}={value!r}: accepted without a rule that allows it")
            else:
                try:
                    _confirm_by_building(changed, key)
                except Exception as err:  # noqa: BLE001 - the rule let through a bad value
                    text = str(err).splitlines()[0] if str(err) else ""
                    problems.append(f"{key}={value!r}: accepted by the rule, but the target "
                                    f"refuses it: {type(err).__name__}: {text}")
        elapsed = time.monotonic() - start
        if elapsed > MAX_SECONDS_PER_CHECK:
            problems.append(f"{key}={value!r}: the check took {elapsed:.1f} s")
    return problems


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_leaf_is_accepted_by_a_rule_or_refused_in_one_line(experiment) -> None:
    cases = [key for exp, key in _all_cases() if exp == experiment]
    problems = [p for key in cases for p in _fuzz_one(experiment, key)]
    assert not problems, "\n".join(problems)


_CASES: list[tuple[str, str]] = []


def _all_cases() -> list[tuple[str, str]]:
    if not _CASES:
        _CASES.extend(_cases())
    return _CASES


def test_the_fuzz_covers_every_group() -> None:
    keys = {key for _, key in _all_cases()}
    for prefix in ("kimg", "seed", "model.g_optimizer.lr", "model.generator.", "diffusion.",
                   "adaptive.", "trainer.", "datamodule.", "callbacks.", "metrics.",
                   "dataset.", "augment."):
        assert any(key.startswith(prefix) for key in keys), prefix
