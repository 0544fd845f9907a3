"""Which directory a training run may write into: one writer, and only its own files.

A fresh start (no ``resume=``) refuses a directory that already holds a run: files a run writes
(checkpoints, metrics, samples ...) or other runs below it. ``resume=auto`` continues the run
that is there; ``overwrite=true`` moves the old directory aside to ``DIR.old-DATE`` (nothing is
deleted). Hydra writes ``.hydra/`` and ``train.log`` into the run directory before a job starts,
so these two never count as a run of their own: a directory where an earlier attempt stopped at
a config error can be used again.

``python -m dgan.train`` checks a run directory given on the command line before Hydra writes
into it (:func:`check_before_hydra`), and every job checks again under its lock
(:func:`claim_run_dir`), also when the directory comes from an interpolation. Only the process
that launches a run does either: the ranks Lightning starts for DDP run in the directory it
holds.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from dgan.core.errors import ConfigError
from dgan.files.run_lock import LOCK_FILE, RunLock, check_unlocked
from dgan.files.writable import check_writable_dir

RUN_KEY = "hydra.run.dir"
SWEEP_KEY = "hydra.sweep.dir"
HYDRA_DIR = ".hydra"
# What a run writes at the top of its directory: any of these means a run was here.
OWN_RUN_FILES = ("checkpoints", "samples", "diagnostics", "metrics.csv", "metrics.jsonl",
                 "metrics_summary.json", "hparams.yaml", "wandb_run_id.txt", "wandb")
# What makes a folder below a run directory another run (a folder of pictures does not).
OTHER_RUN_MARKS = (HYDRA_DIR, LOCK_FILE, "metrics.csv", "metrics.jsonl", "checkpoints/last.ckpt")
# Folders below a run directory that belong to other programs or hold caches.
FOREIGN_DIRS = ("wandb", HYDRA_DIR, "cache")
# Values of resume= that mean a fresh start.
NO_RESUME = (None, "", "none", "null")
OVERWRITE_KEY = "overwrite"
TRUE_WORDS = ("true",)
FALSE_WORDS = ("false",)
MOVED_SUFFIX = ".old-"
DATE_FORMAT = "%Y-%m-%d_%H-%M-%S"
# Hydra's flags that print something and run nothing: no run directory is used.
NO_RUN_FLAGS = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i",
                "--shell-completion", "-sc", "--resolve", "--package", "-p")
MULTIRUN_FLAGS = ("-m", "--multirun")


def is_other_run(path: Path) -> bool:
    """Whether the folder ``path`` is a run directory of its own (a run below another)."""
    return any((path / mark).exists() for mark in OTHER_RUN_MARKS)


def walk_own(run_dir: str | os.PathLike[str]) -> Iterator[tuple[Path, list[str]]]:
    """``(folder, file names)`` of every folder of the run directory that belongs to its run:
    not the folders of other runs below it, nor W&B's, Hydra's or caches.

    Args:
        run_dir: the run directory.
    """
    root = Path(run_dir)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in FOREIGN_DIRS
                         and not is_other_run(here / d))
        yield here, sorted(files)


def runs_below(run_dir: str | os.PathLike[str], first_only: bool = False) -> list[Path]:
    """The run directories below ``run_dir`` (not inside each other), in walking order.

    Hidden folders (``.git``, ``.venv``) and W&B's, Hydra's and cache folders are not searched.

    Args:
        run_dir: the directory.
        first_only: stop at the first one found.
    """
    found: list[Path] = []
    for folder, dirs, _ in os.walk(run_dir):
        here = Path(folder)
        keep = []
        for name in sorted(dirs):
            if name in FOREIGN_DIRS or name.startswith("."):
                continue
            if is_other_run(here / name):
                found.append(here / name)
                if first_only:
                    return found
            else:
                keep.append(name)
        dirs[:] = keep
    return found


def own_run_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """The names in ``run_dir`` that a run wrote (:data:`OWN_RUN_FILES`; empty folders not).

    Args:
        run_dir: the directory.
    """
    root = Path(run_dir)
    found = []
    for name in OWN_RUN_FILES:
        path = root / name
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            found.append(name)
    return found


def what_is_there(run_dir: str | os.PathLike[str]) -> str | None:
    """What makes ``run_dir`` a directory that holds a run, in a few words; None if nothing.

    Args:
        run_dir: the directory.
    """
    root = Path(run_dir)
    if not root.is_dir():
        return None
    own = own_run_files(root)
    if own:
        return f"its {', '.join(own[:2])}"
    below = runs_below(root, first_only=True)
    if below:
        return f"another run: {below[0].relative_to(root)}"
    return None


def check_fresh_start(run_dir: str | os.PathLike[str], key: str = RUN_KEY) -> None:
    """Refuse (one line) a fresh start in a directory that holds a run or other runs.

    Args:
        run_dir: the run (or sweep) directory.
        key: the setting that names it, for the message.
    """
    found = what_is_there(run_dir)
    if found is not None:
        raise ConfigError(f"{key}={run_dir} already holds a run ({found}); continue it with "
                          "resume=auto, pick a new directory, or move it aside with "
                          f"{OVERWRITE_KEY}=true")


def _locks_below(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in FOREIGN_DIRS]
        if LOCK_FILE in files:
            yield Path(folder)


def move_aside(run_dir: str | os.PathLike[str], key: str = RUN_KEY) -> Path:
    """Rename ``run_dir`` to ``RUN_DIR.old-DATE`` (``-2``, ``-3`` ... if taken); nothing is
    deleted. Refused while a run in it (or below it) is alive, and for the working directory
    or one above it. Returns the new name.

    Args:
        run_dir: the directory to move.
        key: the setting that names it, for the messages.
    """
    root = Path(os.path.abspath(run_dir))
    cwd = Path.cwd().resolve()
    if root.resolve() == cwd or root.resolve() in cwd.parents:
        raise ConfigError(f"{OVERWRITE_KEY}=true cannot move {key}={run_dir} aside: it holds the "
                          "working directory; pick a new directory")
    for folder in _locks_below(root):
        if folder != root:
            check_unlocked(folder)
    stamp = datetime.datetime.now().strftime(DATE_FORMAT)
    target = root.with_name(f"{root.name}{MOVED_SUFFIX}{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = root.with_name(f"{root.name}{MOVED_SUFFIX}{stamp}-{number}")
    lock = RunLock(root)  # held while it moves: nobody starts in it in the meantime
    lock.acquire()
    try:
        os.rename(root, target)
    except OSError as err:
        lock.release()
        raise ConfigError(f"{OVERWRITE_KEY}=true: cannot move {root} to {target} "
                          f"({err.strerror or err}); move it yourself or pick a new "
                          "directory") from None
    lock.moved_to(target)
    print(f"[dgan] {OVERWRITE_KEY}=true: moved the old {root} to {target}", flush=True)
    return target


def _launching_process() -> bool:
    # The ranks Lightning starts (LOCAL_RANK/NODE_RANK set) and SLURM's other tasks work in
    # the directory the launching process has claimed: they must not refuse it.
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _flag(value: str, key: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{key}={value} is not valid; expected true or false")


def check_before_hydra(argv: Sequence[str]) -> None:
    """The run (or sweep) directory a command line names, before Hydra writes into it: not
    held by a live run, and not holding a run unless ``resume=`` continues it or
    ``overwrite=true`` moves it aside.

    A directory given through an interpolation, or left to the default (a new dated folder),
    is checked by the job itself (:func:`claim_run_dir`).

    Args:
        argv: the Hydra arguments of ``python -m dgan.train``.
    """
    if not _launching_process() or any(a.partition("=")[0] in NO_RUN_FLAGS for a in argv):
        return
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    key = SWEEP_KEY if multirun else RUN_KEY
    path = None
    resume = None
    overwrite = False
    for arg in argv:
        name, _, value = arg.lstrip("+").partition("=")
        if name == key:
            path = value.strip("\"'")
        elif name == "resume":
            resume = value
        elif name == OVERWRITE_KEY:
            overwrite = _flag(value, OVERWRITE_KEY)
    if path is None or "${" in path:
        return
    run_dir = Path(path or ".")
    if not run_dir.is_dir():
        return
    check_unlocked(run_dir)
    if resume not in NO_RESUME or what_is_there(run_dir) is None:
        return
    if overwrite:
        move_aside(run_dir, key)
        return
    check_fresh_start(run_dir, key)


@contextmanager
def claim_run_dir(cfg: DictConfig) -> Iterator[Path]:
    """Hold the run directory's lock while the block runs, and refuse a fresh start in a
    directory that holds a run (:func:`check_fresh_start`). Yields the run directory.

    Args:
        cfg: the run config (``paths.output_dir``, ``resume``, ``overwrite``).
    """
    run_dir = Path(cfg.paths.output_dir)
    if not _launching_process():
        yield run_dir
        return
    check_writable_dir(run_dir, RUN_KEY)
    with RunLock(run_dir):
        if cfg.get("resume") in NO_RESUME:
            found = what_is_there(run_dir)
            if found is not None and cfg.get(OVERWRITE_KEY):
                # Hydra has written this job's .hydra/ into it already: moving the directory
                # now would take the new run's config along.
                raise ConfigError(f"{OVERWRITE_KEY}=true: {RUN_KEY} must be a plain path on the "
                                  f"command line to be moved aside ({run_dir} holds a run); "
                                  "give the path, or pick a new directory")
            check_fresh_start(run_dir)
        yield run_dir

