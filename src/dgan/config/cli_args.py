"""``key=value`` command-line arguments for the small commands (generate, evaluate).

Every dgan command takes both habits: ``key=value`` (Hydra's) and ``--key=value``
(StyleGAN2-ADA's and argparse's); :func:`strip_dashes` and :func:`dashed` turn one into the other.

``python -m dgan.train`` is a Hydra app; the stand-alone commands take the same ``key=value``
style but parse it here, because Hydra reads ``seeds=1,5,9`` as a sweep over three values and
because ``evaluate`` passes ``dataset.KEY=VALUE`` through to a dataset config it only knows
after reading the checkpoint. Values are YAML scalars or flow lists (``metrics=[a,b]``), read
with the same rules as OmegaConf's dot-lists; ``null`` is None.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import yaml

from dgan.core.errors import ConfigError
from dgan.core.messages import closest_text, listed

T = TypeVar("T")
# --help: each option's description under it, indented and wrapped.
HELP_INDENT = " " * 6
HELP_WIDTH = 96


def parse_value(text: str) -> Any:
    """A YAML scalar or flow list; text YAML cannot read stays a string."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def _convert(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as the field type ``annotation`` (str, int, float, bool, list[str], optional)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(key, value, inner)
    if origin is list:
        (item,) = args
        if isinstance(value, str):  # metrics=a,b as well as metrics=[a,b]
            value = [part for part in value.split(",") if part]
        if not isinstance(value, list):
            value = [value]
        return [_convert(key, v, item) for v in value]
    if value is None:
        raise ConfigError(f"{key}=null is not valid; {key} needs a value")
    if annotation is str:
        return str(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} is not valid; expected true or false")
    if annotation in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}={value!r} is not valid; expected a number")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value!r} is not valid; expected a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}={value} is not valid; expected a finite number (nan and "
                              "inf mean nothing in a dgan setting)")
        if annotation is int:
            if number != int(number):
                raise ConfigError(f"{key}={value!r} is not valid; expected an integer")
            return int(number)
        return number
    return value  # Any: as YAML read it


# The prefix of StyleGAN2-ADA's and argparse's long options (--seeds=0-3).
LONG_OPTION = "--"


def strip_dashes(arg: str) -> str:
    """``--key=value`` -> ``key=value``; anything else unchanged (both habits are accepted)."""
    if arg.startswith(LONG_OPTION) and "=" in arg:
        return arg[len(LONG_OPTION):]
    return arg


# Values that turn an argparse switch (store_true) on or leave it off.
SWITCH_VALUES = {"true": True, "false": False}


def dashed(argv: Sequence[str], valued: Sequence[str] = ()) -> list[str]:
    """``key=value`` -> ``--key=value`` for the argparse commands (prepare, bench).

    Underscores in the key become dashes (``max_images=10`` -> ``--max-images=10``);
    ``key=true`` becomes the switch ``--key`` and ``key=false`` leaves it off; arguments that
    already start with a dash pass through, and so does the value after an option of
    ``valued`` (``--override seed=1``: seed=1 is that option's value, not an option).

    Args:
        argv: the arguments (without the program name).
        valued: options whose value may itself read ``key=value``.
    """
    out = []
    for index, arg in enumerate(argv):
        key, sep, text = arg.partition("=")
        follows_option = index > 0 and argv[index - 1] in valued
        if not sep or not key.replace("_", "").replace("-", "").isalnum() or arg[0] == "-" \
                or follows_option:
            out.append(arg)
            continue
        option = LONG_OPTION + key.replace("_", "-")
        switch = SWITCH_VALUES.get(text.lower())
        if switch is None:
            out.append(f"{option}={text}")
        elif switch:
            out.append(option)
    return out


def parse_key_values(
    argv: Sequence[str], options: type[T], passthrough: Sequence[str] = ()
) -> tuple[T, dict[str, dict[str, Any]]]:
    """Fill the dataclass ``options`` from ``key=value`` arguments.

    Unknown keys, repeated keys and arguments without ``=`` raise :class:`ConfigError` naming
    the argument and the valid keys.

    Args:
        argv: the arguments (without the program name).
        options: dataclass whose fields are the valid keys (defaults apply to absent keys).
        passthrough: prefixes whose dotted keys (``dataset.path=...``) are collected as
            ``{prefix: {key: value}}`` for the caller to validate.
    """
    fields = {f.name: f for f in dataclasses.fields(options)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(options)
    values: dict[str, Any] = {}
    extra: dict[str, dict[str, Any]] = {prefix: {} for prefix in passthrough}
    valid = [*fields, *(f"{p}.KEY" for p in passthrough)]
    for arg in argv:
        key, sep, text = strip_dashes(arg).partition("=")
        if not sep or not key:
            raise ConfigError(listed(f"argument {arg!r} is not key=value", "valid keys",
                                     valid))
        prefix, dot, sub = key.partition(".")
        if dot and prefix in extra:
            extra[prefix][sub] = parse_value(text)
            continue
        if key not in fields:
            raise ConfigError(listed(f"{key}: unknown key{closest_text(key, valid)}",
                                     "valid keys", valid))
        if key in values:
            raise ConfigError(f"{key} is given twice")
        values[key] = _convert(key, parse_value(text), hints[key])
        _check_option(options, key, values[key])
    return options(**values), extra


def _check_option(options: type[Any], key: str, value: Any) -> None:
    """A command's option against its rule, declared beside the options (``RULES``)."""
    from dgan.config.instantiation import show_value

    rule = getattr(options, "RULES", {}).get(key)
    if rule is not None and not rule.accepts(value):
        raise ConfigError(f"{key}={show_value(value)} is not valid; expected {rule.text()}")


def usage(command: str, options: type[Any]) -> str:
    """Help text: the command and each key with its default and its one-line description."""
    lines = [f"usage: python -m {command} key=value ... (or --key=value)", ""]
    docs = _field_docs(options)
    for field in dataclasses.fields(options):
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        shown = "null" if default is None else default
        lines.append(f"  {field.name}={shown}")
        if docs.get(field.name):
            lines.append(textwrap.fill(docs[field.name], width=HELP_WIDTH,
                                       initial_indent=HELP_INDENT,
                                       subsequent_indent=HELP_INDENT))
    return "\n".join(lines)


def _field_docs(options: type[Any]) -> dict[str, str]:
    """``name: description`` lines of the dataclass docstring's Args section."""
    docs: dict[str, str] = {}
    in_args = False
    current, indent = None, 0
    for line in (options.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        depth = len(line) - len(line.lstrip())
        if in_args and current is not None and stripped and depth > indent:
            # A description wrapped onto more lines, indented under its name: one help line.
            docs[current] += " " + stripped
            continue
        if in_args and ":" in stripped:
            name, _, text = stripped.partition(":")
            if name.isidentifier():
                docs[name] = text.strip()
                current, indent = name, depth
    return docs


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as every dgan command's: one ``error:`` line, exit status 2
    (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)


def run_command(action: Callable[[], object]) -> int:
    """Run a command's ``action``: 0 on success, 2 with one ``error:`` line on bad input."""
    try:
        action()
    except ConfigError as err:
        # One line that names the key, the value and what is valid; no traceback.
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


def key_value_main(command: str, options: type[T], run: Callable[[T], object],
                   argv: Sequence[str] | None = None) -> int:
    """The whole ``main`` of a ``key=value`` command: ``--help``, parsing, then ``run``.

    Args:
        command: the module, as ``python -m`` takes it (shown by ``--help``).
        options: the command's options dataclass (its fields are the keys).
        run: what the command does with the parsed options.
        argv: the arguments (None: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(usage(command, options))
        return 0
    return run_command(lambda: run(parse_key_values(args, options)[0]))
