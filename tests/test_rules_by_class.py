"""A config's rules follow the class its _target_ names, whatever the spelling, and a command's
option rules sit beside its options (config/rules.py names no command)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dgan import evaluate, generate, project, style_mixing, video
from dgan.config import rules
from dgan.config.cli_args import parse_key_values
from dgan.config.instantiation import check_node
from dgan.core.errors import ConfigError

COMMAND_OPTIONS = [generate.GenerateOptions, evaluate.EvaluateOptions, project.ProjectOptions,
                   style_mixing.StyleMixingOptions, video.VideoOptions]
COMMANDS = {p.stem for p in (Path(rules.__file__).parents[1]).glob("*.py")} - {"__init__"}


def test_every_rule_table_key_names_a_class_or_function() -> None:
    for table in (rules.BY_TARGET, rules.RELATIONS):
        unresolved = [key for key in table if not callable(rules.resolve_target(key))]
        assert unresolved == []


@pytest.mark.parametrize("target", ["dgan.diffusion.Diffusion",
                                    "dgan.diffusion.process.Diffusion"])
def test_a_relation_holds_for_every_spelling_of_the_class(target: str) -> None:
    node = OmegaConf.create({"_target_": target, "beta_start": 0.02, "beta_end": 0.001})
    with pytest.raises(ConfigError, match=r"diffusion\.beta_end=0\.001 is not valid; expected a "
                                          r"number in \[beta_start, 1\)"):
        check_node(node, "diffusion")


@pytest.mark.parametrize("target", ["dgan.callbacks.AdaptiveProbability",
                                    "dgan.callbacks.adaptive_probability.AdaptiveProbability"])
def test_a_value_rule_holds_for_every_spelling_of_the_class(target: str) -> None:
    node = OmegaConf.create({"_target_": target, "ada_maxp": 2.0})
    with pytest.raises(ConfigError, match=r"augment_p\.ada_maxp=2\.0? is not valid; expected a "
                                          r"number in \[0, 1\]"):
        check_node(node, "augment_p")


def test_an_unknown_target_has_no_rules_and_no_crash() -> None:
    assert rules.rule_for("x.ada_maxp", "dgan.no.such.Thing", "ada_maxp") is None
    assert rules.relation_problems("dgan.no.such.Thing", {"beta_start": 1, "beta_end": 0}) == []


def test_rules_name_no_command() -> None:
    text = Path(rules.__file__).read_text()
    named = set(re.findall(r"dgan\.(\w+)[:.]", text))
    assert named & COMMANDS == set()


@pytest.mark.parametrize("options", COMMAND_OPTIONS, ids=lambda o: o.__name__)
def test_each_command_declares_rules_for_its_own_keys(options: type) -> None:
    fields = {f.name for f in dataclasses.fields(options)}
    assert options.RULES and set(options.RULES) <= fields


def test_a_command_option_is_checked_against_its_rule() -> None:
    with pytest.raises(ConfigError, match=r"noise_mode='random' is not valid; expected one of "
                                          r"const, none"):
        parse_key_values(["noise_mode=random"], project.ProjectOptions)
    with pytest.raises(ConfigError, match=r"space='x' is not valid"):
        parse_key_values(["space=x"], video.VideoOptions)
