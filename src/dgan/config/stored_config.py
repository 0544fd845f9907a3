"""A config read from a file (a checkpoint's stored run config) names only what dgan builds.

Commands that read a checkpoint rebuild networks and datasets from the config stored in it
through Hydra's ``instantiate``, which calls whatever a ``_target_`` names. A checkpoint is
shared like data, so its config must not be able to name code: before anything of it is built,
:func:`check_stored_config` walks the whole tree and accepts a ``_target_`` (wherever it sits:
nested nodes, ``_args_``, lists, ``_partial_`` nodes) only when it is

- a public class defined in one of the dgan modules whose classes a run config builds
  (:data:`BUILT_MODULES`: networks, losses, diffusion, augmentation, datasets and the
  datamodule, the callbacks and the metrics callback, the CSV logger), or one of the factories
  of :data:`BUILT_FACTORIES`;
- a ``torch.optim`` optimizer (a subclass of ``torch.optim.Optimizer``);
- one of the Lightning classes dgan's own configs name (:data:`LIGHTNING_TARGETS`), by exact
  spelling (they are only ever built by ``dgan.train`` from its own composed config).

A dgan target is decided from dgan's source files (read with :mod:`ast`, nothing imported), so
any spelling of an allowed class passes (``dgan.diffusion.Diffusion`` and
``dgan.diffusion.process.Diffusion``) and checking a checkpoint imports no module it names.
Only ``torch.optim.*`` targets are imported. A stored config is saved resolved, so an
interpolation (``${...}``, which could call a resolver or build a node after this check) is
refused too. The command line and the user's own ``conf/`` are not checked here: they are
trusted.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

from dgan.core.errors import ConfigError

TARGET_KEY = "_target_"
INTERPOLATION = "${"
# The dgan package directory: targets under ``dgan.`` are looked up in its source files.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = "dgan"
OPTIMIZER_PACKAGE = "torch.optim"
# Modules (or packages, with everything below them) whose public classes a run config builds.
BUILT_MODULES = (
    "dgan.networks",
    "dgan.training.module",
    "dgan.training.losses",
    "dgan.training.strategy",
    "dgan.diffusion",
    "dgan.augment",
    "dgan.data.datamodule",
    "dgan.data.digits",
    "dgan.data.images",
    "dgan.data.toy",
    "dgan.callbacks",
    "dgan.tracking.run_history",
)
# Functions a run config calls to build something (a logger), as (defining module, name).
BUILT_FACTORIES = frozenset({("dgan.tracking.loggers", "wandb_logger")})
# Classes of Lightning that dgan's configs name (the trainer, a logger), by exact spelling.
LIGHTNING_TARGETS = frozenset({
    "lightning.Trainer",
    "lightning.pytorch.Trainer",
    "lightning.pytorch.loggers.TensorBoardLogger",
})
# How much of a refused value a message shows (the line stays short whatever the file holds).
SHOWN_CHARS = 80
# Re-exports followed from one module to the next before a target counts as unresolvable.
MAX_REEXPORTS = 8


class StoredConfigRefused(ConfigError):
    """A config read from a file names code (or holds an interpolation); nothing of it ran."""


def check_stored_config(config: Any, where: str) -> None:
    """Refuse ``config`` unless every ``_target_`` in it is a class dgan builds and it holds no
    interpolation; checked over the whole tree before the caller builds any part of it.

    Args:
        config: the config as read from the file (plain dicts, lists and values).
        where: what the file was given as, for the message (``ckpt=run/last.ckpt``).

    Raises:
        StoredConfigRefused: one line naming ``where``, the key path and the target or value.
    """
    _check(config, "", where)


def _check(node: Any, key: str, where: str) -> None:
    if isinstance(node, str):
        if INTERPOLATION in node:
            raise StoredConfigRefused(
                f"{where}: {key or 'the config'}={_shown(node)} is an interpolation, which a "
                "stored config (saved resolved) never holds; refused, nothing was run")
    elif isinstance(node, dict):
        for name, value in node.items():
            child = f"{key}.{name}" if key else str(name)
            if INTERPOLATION in str(name):
                raise StoredConfigRefused(f"{where}: the key {_shown(str(child))} is an "
                                          "interpolation; refused, nothing was run")
            if name == TARGET_KEY:
                if not (isinstance(value, str) and is_built_target(value)):
                    raise StoredConfigRefused(f"{where}: {child}={_shown(value)} is not a class "
                                              "dgan builds; refused, nothing was run")
            else:
                _check(value, child, where)
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            _check(item, f"{key}[{index}]", where)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def is_built_target(target: str) -> bool:
    """Whether ``target`` (a ``_target_`` string) names a class dgan builds (see the module's
    text); imports nothing but ``torch.optim`` modules.

    Args:
        target: a dotted name.
    """
    parts = target.split(".")
    if not all(part.isidentifier() and not part.startswith("_") for part in parts):
        return False  # private and dunder names reach past the public classes
    if target in LIGHTNING_TARGETS:
        return True
    if _under(target, OPTIMIZER_PACKAGE):
        return _is_optimizer(parts)
    if not _under(target, PACKAGE):
        return False
    found = _defined_at(parts)
    if found is None:
        return False
    module, name, kind = found
    if kind == "class":
        return any(_under(module, allowed) for allowed in BUILT_MODULES)
    return kind == "function" and (module, name) in BUILT_FACTORIES


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_optimizer(parts: list[str]) -> bool:
    """``torch.optim.X`` imported as Hydra would, kept when it is an Optimizer subclass."""
    import importlib
    import inspect

    import torch

    for split in range(len(parts), 1, -1):
        module_name = ".".join(parts[:split])
        if not _under(module_name, OPTIMIZER_PACKAGE):
            return False
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute, None)
        return inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
    return False


def _defined_at(parts: list[str]) -> tuple[str, str, str] | None:
    """(defining module, name, ``class`` | ``function``) of the dgan object ``parts`` names,
    looked up as Hydra does (an attribute of the module so far, else its submodule), following
    re-exports (``from dgan.x import Name``) through the source; None: no public class or
    function at the top level of a dgan module."""
    return _follow(PACKAGE, parts[1:], MAX_REEXPORTS)


def _follow(module: str, rest: list[str], hops: int) -> tuple[str, str, str] | None:
    if hops == 0 or not rest or _source_file(module) is None:
        return None
    name, more = rest[0], rest[1:]
    binding = _top_level(module).get(name)
    if binding is not None:
        kind, source, original = binding
        if kind == "import":
            return _follow(source, [original, *more], hops - 1)
        if kind in ("class", "function") and not more:
            return module, name, kind
        return None  # bound by an assignment or under a condition: decided only at run time
    return _follow(f"{module}.{name}", more, hops)  # a submodule reached as an attribute


@functools.cache
def _source_file(module: str) -> Path | None:
    """The source of dgan module ``module`` (a package's ``__init__.py``); None if none."""
    parts = module.split(".")
    if parts[0] != PACKAGE or not all(part.isidentifier() for part in parts):
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    candidates = [base / "__init__.py"]
    if len(parts) > 1:
        candidates.append(base.with_name(base.name + ".py"))
    return next((path for path in candidates if path.is_file()), None)


@functools.cache
def _top_level(module: str) -> dict[str, tuple[str, str, str]]:
    """Names bound at the top level of ``module``: name -> (``class`` | ``function`` |
    ``import`` | ``other``, the module it is imported from, its name there). A name bound
    inside an ``if``/``try``/``with`` or by an assignment is ``other``: which object it ends up
    as is decided at run time, so it is never taken as a class."""
    path = _source_file(module)
    assert path is not None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    bound: dict[str, tuple[str, str, str]] = {}
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef):
            bound[statement.name] = ("class", module, statement.name)
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            bound[statement.name] = ("function", module, statement.name)
        elif isinstance(statement, ast.ImportFrom):
            source = _absolute(statement, package)
            for alias in statement.names:
                bound[alias.asname or alias.name] = ("import", source, alias.name)
        else:
            for node in ast.walk(statement):
                for name in _names_bound(node):
                    bound[name] = ("other", module, name)
    return bound


def _absolute(statement: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` reads, relative imports made absolute."""
    if not statement.level:
        return statement.module or ""
    base = package.rsplit(".", statement.level - 1)[0] if statement.level > 1 else package
    return f"{base}.{statement.module}" if statement.module else base


def _names_bound(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return [node.id]
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(alias.asname or alias.name).partition(".")[0] for alias in node.names]
    return []
