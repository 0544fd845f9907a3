"""Config node -> object through Hydra's ``instantiate``, with one-line errors naming the key.

Before anything is built, every value of a node (and of the nodes inside it) is checked against
the signature of its ``_target_``: a string or a list where a number is expected, a number
where a list is, or a key the target does not take stops with one line that names the key, the
value and what is valid. Annotations the checker cannot judge (classes, callables) are left to
the target itself.

Kept apart from :mod:`dgan.assembly.builder` (which assembles a whole training run and imports
Lightning) so that the small commands (generate, evaluate) start quickly.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import pathlib
import types
import typing
from collections.abc import Iterable
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from dgan.core.errors import ConfigError
from dgan.core.messages import closest_first, closest_text, listed

# Node keys that steer Hydra's instantiate rather than reach the target.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
# Annotations read as "a list": a string there is read letter by letter by the target.
SEQUENCE_TYPES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
MAPPING_TYPES = (dict, collections.abc.Mapping)
# Annotations that take any path-like text.
PATH_TYPES = (pathlib.Path, pathlib.PurePath)


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """Instantiate config ``node`` (found at ``key``); errors name the key.

    Args:
        node: the config node with a ``_target_``.
        key: where the node sits in the run config (``model``, ``callbacks.samples``).
        **kwargs: arguments the caller passes besides the node's own (not type-checked).
    """
    if isinstance(node, DictConfig) and "_target_" not in node:
        # An overlay's keys under a group the command line set to none (an experiment's
        # diffusion.X with diffusion=none) leave a node that would reach training as a dict.
        raise ConfigError(f"{key} has {', '.join(map(str, node))} but no _target_: nothing "
                          f"builds it (is {key}=none with an experiment that sets {key}.*?); "
                          f"choose a {key} config or drop those keys")
    if isinstance(node, DictConfig):
        check_node(node, key, given=kwargs)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(_explain(key, node, cause)) from err
    except (ValueError, TypeError) as err:
        raise ConfigError(_explain(key, node, err)) from err


def _explain(key: str, node: Any, err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, TypeError) and "unexpected keyword argument" in text:
        bad = text.split("'")[-2] if "'" in text else "?"
        target = node.get("_target_", key) if hasattr(node, "get") else key
        valid = _valid_keys(target)
        head = f"{key}.{bad}: unknown key for {target}"
        return listed(head + closest_text(bad, valid), "valid keys", valid) if valid else head
    if "=" in text.split(" ")[0]:  # our modules start messages with "name=value"
        return f"{key}.{text}"
    return f"{key}: {text}"


def _valid_keys(target: str) -> list[str]:
    """The keyword arguments ``target`` takes (empty when it cannot be read)."""
    try:
        params = _parameters(get_object(target))
    except Exception:  # noqa: BLE001 - a listing is extra help, never a second error
        return []
    return [name for name, p in params.items() if p.kind not in _VARIADIC]


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    """The named parameters of a callable or a class's constructor."""
    return dict(inspect.signature(obj).parameters)


def _hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations of ``obj`` (its ``__init__`` for a class); unresolvable ones left
    out, since ``from __future__ import annotations`` leaves names only importable under
    TYPE_CHECKING."""
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - resolve one annotation at a time below
        pass
    hints: dict[str, Any] = {}
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))  # noqa: S307 - own source
            except Exception:  # noqa: BLE001 - an annotation we cannot judge is skipped
                continue
        hints[name] = annotation
    return hints


def check_node(node: DictConfig, key: str, given: Iterable[str] = ()) -> None:
    """Check every value of ``node`` against its ``_target_``, recursively: the type its
    signature asks for, the rule :mod:`dgan.config.rules` has for it (range, size, choice,
    finite number) and the relations between its keys.

    Args:
        node: a config node with a ``_target_``.
        key: where the node sits in the run config, for the error messages.
        given: keys the caller passes itself (they need not be in the node).
    """
    from dgan.config import rules

    target_name = str(node._target_)
    try:
        target = get_object(target_name)
    except Exception:  # noqa: BLE001 - any import or lookup failure is the same for the user
        raise ConfigError(f"{key}._target_={target_name!r}: no such class or function; "
                          f"check the spelling of {key}._target_") from None
    try:
        params = _parameters(target)
    except (TypeError, ValueError):  # builtins without a signature
        params = {}
    takes_any = not params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    hints = _hints(target) if params else {}
    valid = [name for name, p in params.items() if p.kind not in _VARIADIC]
    values: dict[str, Any] = {}
    for name in node:
        name = str(name)
        if name in HYDRA_KEYS or name in given:
            continue
        path = f"{key}.{name}"
        if name not in params and not takes_any:
            raise ConfigError(listed(f"{path}: unknown key for {node._target_}",
                                     "valid keys", closest_first(name, valid)))
        value = node[name]
        if isinstance(value, DictConfig) and "_target_" in value:
            check_node(value, path)
            continue
        plain = OmegaConf.to_container(value, resolve=True) \
            if isinstance(value, DictConfig | ListConfig) else value
        values[name] = plain
        named = _named(node, name, path)
        check_finite(path, plain, named)
        rule = rules.rule_for(path, target_name, name)
        annotation = hints.get(name)
        default = params[name].default if name in params else inspect.Parameter.empty
        if rule is not None:
            if not rule.accepts(plain):
                raise ConfigError(named.format(value=show_value(plain))
                                  + f"; expected {rule.text()}")
            continue
        if annotation is None or plain is None and default is None:
            continue  # None is the documented "unset" of this argument
        if fits(plain, annotation) is False:
            raise ConfigError(named.format(value=show_value(plain))
                              + f"; expected {describe(annotation, plain)}")
    for name, value, what in rules.relation_problems(target_name, values):
        named = _named(node, name, f"{key}.{name}")
        raise ConfigError(named.format(value=show_value(value)) + f"; expected {what}")


def _named(node: DictConfig, name: str, path: str) -> str:
    """``KEY={value} is not valid``, the template of an error about the value at ``path``: KEY
    is the key the user sets when the value is an interpolation of another key
    (``model.discriminator.c_dim: ${model.generator.c_dim}``)."""
    raw = node._get_node(name)
    text = raw._value() if raw is not None else None
    if isinstance(text, str) and text.startswith("${") and text.endswith("}") \
            and ":" not in text and text.count("${") == 1:
        return f"{text[2:-1]}={{value}} is not valid (it sets {path})"
    return f"{path}={{value}} is not valid"


def check_interpolations(cfg: DictConfig, prefix: str = "", skip: Iterable[str] = ("hydra",)
                         ) -> None:
    """Every ``${...}`` of ``cfg`` resolves; one that does not stops here in one line naming
    the key and the interpolation (omegaconf's own error is a traceback from wherever the value
    is first read).

    Args:
        cfg: a config node (the composed run config).
        prefix: the dotted key of ``cfg`` in the run config.
        skip: top-level keys left alone (Hydra's own node).
    """
    from omegaconf.errors import (
        GrammarParseError,
        InterpolationKeyError,
        InterpolationResolutionError,
        InterpolationToMissingValueError,
        UnsupportedInterpolationType,
    )

    # What an interpolation itself gets wrong; a resolver that fails on a bad value (a list
    # where a number is) is left to the check of that value, which names it.
    unresolvable = (GrammarParseError, InterpolationKeyError, InterpolationToMissingValueError,
                    UnsupportedInterpolationType)

    keys = list(cfg.keys()) if isinstance(cfg, DictConfig) else list(range(len(cfg)))
    for name in keys:
        if not prefix and str(name) in skip:
            continue
        path = f"{prefix}.{name}" if prefix and isinstance(cfg, DictConfig) else \
            f"{prefix}[{name}]" if prefix else str(name)
        if OmegaConf.is_interpolation(cfg, name):
            try:
                cfg[name]
            except unresolvable as err:
                raw = cfg._get_node(name)._value()  # noqa: SLF001 - the text as written
                reason = str(err).strip().splitlines()[0] if str(err).strip() else \
                    type(err).__name__
                reason = reason[:1].lower() + reason[1:]
                raise ConfigError(f"{path}={raw}: {reason}; give a value, or ${{KEY}} naming "
                                  "a key of the run config") from None
            except InterpolationResolutionError:
                pass  # a resolver refusing a bad value: the check of that value names it
            continue
        child = cfg._get_node(name)  # noqa: SLF001 - without resolving it
        if isinstance(child, DictConfig | ListConfig) and not child._is_none() \
                and not child._is_missing():  # noqa: SLF001
            check_interpolations(child, path, skip)


def check_finite(key: str, value: Any, named: str | None = None) -> None:
    """No nan or inf anywhere in ``value`` (a number, or a list or mapping of them).

    Args:
        key: where the value sits.
        value: plain data.
        named: the message's ``KEY={value} is not valid`` template (default: from ``key``).
    """
    template = named or f"{key}={{value}} is not valid"
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(template.format(value=show_value(value)) + "; expected a finite "
                          "number (nan and inf mean nothing in a dgan setting)")
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(template.format(value=show_value(value)) + "; expected "
                                  "finite numbers (nan and inf mean nothing in a dgan setting)")
            check_finite(key, item, named)
    elif isinstance(value, dict):
        for name, item in value.items():
            check_finite(f"{key}.{name}", item)


def show_value(value: Any) -> str:
    """A value as the user would write it on the command line."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fits(value: Any, annotation: Any) -> bool | None:
    """Whether ``value`` (plain data from a config) fits ``annotation``; None: cannot judge.

    Args:
        value: a YAML value (None, bool, int, float, str, list or dict).
        annotation: a type annotation from the target's signature.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        results = [fits(value, arg) for arg in args]
        if True in results:
            return True
        return False if all(r is False for r in results) else None
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if value is None:
        return False
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        # An integral float (from an interpolation's arithmetic) is the same count.
        return not isinstance(value, bool) and (
            isinstance(value, int) or isinstance(value, float) and value.is_integer())
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str or annotation in PATH_TYPES:
        return not isinstance(value, list | dict)
    container = origin or annotation
    if container in SEQUENCE_TYPES:
        if not isinstance(value, list):
            return False  # a string would be read letter by letter, a number not at all
        if not args:
            return True
        if origin is tuple and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return False
            judged = [fits(v, a) for v, a in zip(value, args, strict=True)]
        else:
            judged = [fits(v, args[0]) for v in value]
        if False in judged:
            return False
        return True if all(judged) else None
    if container in MAPPING_TYPES:
        return isinstance(value, dict)
    if _is_tensor_type(container):
        # torch takes a number or a nested list where it annotates a Tensor (lr: float | Tensor)
        return isinstance(value, int | float | list) and not isinstance(value, bool)
    return None  # a class or callable: the target checks it itself


def _is_tensor_type(annotation: Any) -> bool:
    # By name: importing torch here would slow the small commands down.
    return getattr(annotation, "__name__", "") == "Tensor" and str(
        getattr(annotation, "__module__", "")).startswith("torch")


def describe(annotation: Any, value: Any = None) -> str:
    """What ``annotation`` asks for, in words (``a number``, ``a list, e.g. [a]``).

    Args:
        annotation: a type annotation.
        value: the refused value (a scalar given for a list is shown in the example).
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        words = [describe(arg, value) for arg in args if arg is not type(None)]
        words = list(dict.fromkeys(words))
        optional = " or null" if type(None) in args else ""
        return " or ".join(words) + optional
    if origin is typing.Literal:
        return "one of " + ", ".join(show_value(a) for a in args)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str or annotation in PATH_TYPES:
        return "a string"
    if (origin or annotation) in SEQUENCE_TYPES:
        example = f"[{value}]" if isinstance(value, str | int | float) else "[a, b]"
        return f"a list, e.g. {example}"
    if (origin or annotation) in MAPPING_TYPES:
        return "a mapping of keys to values"
    return getattr(annotation, "__name__", str(annotation))

