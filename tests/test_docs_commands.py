"""Every command the README and docs/ show is run here, or visibly marked (issue 25, item 3).

The convention: a fenced block with the info string ``bash`` is run by this file; a ``console``
block is not, and its first line is ``# needs: ...`` (data, weights, GPUs, a cluster, time),
but its ``dgan.train`` commands are still composed, so a renamed key or group fails here too.
``text`` blocks show output and ``python`` blocks code. In a ``bash`` block:

- ``python -m dgan.train`` (or ``dgan-train``) runs in this process with ``debug=default``
  appended (any ``kimg=`` dropped; a multirun runs its first job): the first command of each
  experiment trains, later ones are built (every key checked) unless they resume, initialise or
  log elsewhere; a DDP run is built, not fit; ``--cfg`` only composes; ``--help`` prints the
  page;
- the other ``python -m dgan.*`` commands run in this process through their ``main``, with the
  sample counts of metric names cut to 200;
- ``make TARGET`` is checked with ``make -n``; anything else runs in a shell.

Commands run in a temporary directory where ``RUN_DIR`` is a finished tiny digits run and
``IMAGES_DIR`` a folder of images; ``docs/results/runs`` (the records of the runs behind the
results, shipped with the repository) is read where the repository has it. README.md and
docs/ carry no words of how the code was made (the second test).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import CONF, REPO, compose_train

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.M | re.S)
SHELL_LANGS = ("bash", "console")
KNOWN_LANGS = ("bash", "console", "text", "python")
NEEDS = "# needs:"
# Words of how the code was developed, and commit hashes: none in the user docs.
DEV_WORDS = re.compile(r"\b(session|idle cpu|development cpu|earlier commit)\b", re.I)
HASH = re.compile(r"\b[0-9a-f]{7}\b")
SCRIPTS = {"dgan-train": "dgan.train", "dgan-generate": "dgan.generate",
           "dgan-evaluate": "dgan.evaluate", "dgan-prepare": "dgan.data.prepare",
           "dgan-bench": "dgan.bench", "dgan-convert": "dgan.convert",
           "dgan-sweep-report": "dgan.sweep_report", "dgan-project": "dgan.project",
           "dgan-style-mixing": "dgan.style_mixing", "dgan-video": "dgan.video"}
GROUP_ROW = re.compile(r"^\| `([\w/]+)` \| (.*?) \| .* \|$", re.M)
SMALL_COUNT = "200"
RECORDS = "docs/results/runs"  # a path the docs give from the repository's root
HYDRA_BUILTIN_CHOICES = {"hydra/launcher": {"basic"}}
# Commands with these keys always train (they continue or start from a run, or log elsewhere);
# others train once per experiment and are otherwise built. DDP commands are built only.
RUN_KEYS = ("resume=", "init=", "logger=", "hparams_search=")
_FITTED: set[str] = set()


def blocks() -> list[tuple[str, str, str]]:
    """``(page, info string, text)`` of every fenced block."""
    out = []
    for page in PAGES:
        for match in FENCE.finditer(page.read_text(encoding="utf-8")):
            out.append((page.relative_to(REPO).as_posix(), match.group(1), match.group(2)))
    return out


def commands(text: str) -> list[str]:
    """The command lines of a shell block: continuation lines joined, comments dropped."""
    joined = text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


def shell_commands(lang: str) -> list[tuple[str, str]]:
    """``(page, command)`` of the blocks of ``lang``; a command shown twice is run once."""
    seen: dict[str, str] = {}
    for page, info, text in blocks():
        if info == lang:
            for command in commands(text):
                seen.setdefault(command, page)
    return [(page, command) for command, page in seen.items()]


BASH = shell_commands("bash")
CONSOLE_TRAIN = [(page, command) for page, command in shell_commands("console")
                 if command.split()[:3] == ["python", "-m", "dgan.train"]]


# ----------------------------------------------------------------------------- the convention


def test_every_block_is_run_or_marked() -> None:
    found = blocks()
    assert len(found) > 20
    for page, info, text in found:
        assert info in KNOWN_LANGS, f"{page}: a block without a known info string: {text[:80]}"
        if info == "console":
            assert text.startswith(NEEDS), f"{page}: a console block must start with {NEEDS}"
    assert len(BASH) > 30  # the run commands


def test_docs_hold_no_development_notes() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert not DEV_WORDS.search(text), (page, DEV_WORDS.search(text))
        assert not HASH.search(text), (page, HASH.search(text))
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_every_docs_link_points_at_a_page() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+?\.(?:md|png))\)", page.read_text()):
            if target.startswith("http"):
                continue
            assert (page.parent / target).is_file(), (page, target)
        for target in re.findall(r'src="([^"]+)"', page.read_text()):
            assert (page.parent / target).is_file(), (page, target)


def test_config_group_table_matches_conf() -> None:
    text = (REPO / "docs" / "training-and-configs.md").read_text()
    table = text[text.index("| group | choices |"):]
    table = table[:table.index("\n\n")]
    rows = {group: set(re.findall(r"`([\w/]+)`", choices))
            for group, choices in GROUP_ROW.findall(table)}
    groups = {p.relative_to(CONF).as_posix() for p in CONF.rglob("*")
              if p.is_dir() and list(p.glob("*.yaml"))}
    assert set(rows) == groups, (set(rows) ^ groups)
    for group in groups:
        on_disk = {p.stem for p in (CONF / group).glob("*.yaml")}
        on_disk |= HYDRA_BUILTIN_CHOICES.get(group, set())
        assert rows[group] == on_disk, (group, rows[group] ^ on_disk)


# ----------------------------------------------------------------------------- running them


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A tiny finished digits run (RUN_DIR) and a folder of images (IMAGES_DIR)."""
    from dgan.files.console_log import LOG_FILE, ConsoleLog
    from dgan.train import train

    root = tmp_path_factory.mktemp("docs")
    run_dir = root / "digits_run"
    with ConsoleLog(run_dir / LOG_FILE):  # what python -m dgan.train adds: train.log
        train(compose_train(["experiment=digits_stylegan2", "debug=default",
                             f"hydra.run.dir={run_dir}"], run_dir))
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(8):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), np.uint8)).save(images / f"{k}.png")
    cwd = root / "cwd"
    cwd.mkdir()
    return {"RUN_DIR": run_dir, "IMAGES_DIR": images, "cwd": cwd}


def _substitute(command: str, places: dict[str, Path]) -> list[str]:
    for name in ("RUN_DIR", "IMAGES_DIR"):
        command = command.replace(name, str(places[name]))
    command = command.replace(RECORDS, str(REPO / RECORDS))
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # OMP_NUM_THREADS=1 python ...
        words = words[1:]
    if words and words[0] in SCRIPTS:
        words = ["python", "-m", SCRIPTS[words[0]], *words[1:]]
    return words


def _first_of_sweep(arg: str) -> str:
    key, eq, value = arg.partition("=")
    if eq and "," in value and not value.startswith("["):
        value = value.split(",")[0]
    return f"{key}{eq}{value}"


def _train_overrides(args: list[str]) -> list[str]:
    return [_first_of_sweep(a) for a in args if a not in ("-m", "--multirun")]


def _run_train(args: list[str], cwd: Path, monkeypatch, capsys) -> None:
    from dgan.assembly.builder import build_run
    from dgan.config.debug import apply_debug
    from dgan.config.help_page import help_page
    from dgan.train import hydra_argv, train

    args = hydra_argv(args)
    if "--help" in args:
        assert "experiment=NAME" in help_page(CONF)
        return
    if "--cfg" in args:
        i = args.index("--cfg")
        compose_train(_train_overrides(args[:i] + args[i + 2:]))
        return
    overrides = _train_overrides(args)
    if "debug=default" not in overrides:  # a command sized for debug keeps its kimg
        overrides = [a for a in overrides if not a.startswith("kimg=")]
    given = [a.partition("=")[2] for a in overrides if a.startswith("hydra.run.dir=")]
    run_dir = cwd / (given[0] if given else f"run{len(list(cwd.glob('run*')))}")
    if not given:
        overrides.append(f"hydra.run.dir={run_dir}")
    if "debug=default" not in overrides:
        overrides.append("debug=default")
    if "hparams_search=diffusion_optuna" in overrides:
        overrides.append("metrics=toy")  # Optuna needs a headline metric; debug has none
    monkeypatch.chdir(cwd)
    cfg = compose_train(overrides, run_dir)
    experiment = next((a for a in overrides if a.startswith("experiment=")), "experiment=")
    fit = not any(a.startswith("trainer=ddp") for a in overrides) and (
        experiment not in _FITTED or any(a.startswith(RUN_KEYS) for a in overrides))
    if not fit:  # built (every key checked) but not trained: one run per experiment is enough
        apply_debug(cfg)
        build_run(cfg)
        return
    _FITTED.add(experiment)
    train(cfg)
    assert "[dgan] finished at kimg" in capsys.readouterr().out


def _small_counts(args: list[str]) -> list[str]:
    return [re.sub(r"(?<=digits|pixels)\d+k?(?=_)", SMALL_COUNT, a)
            if a.startswith("metrics=") else a for a in args]


def _run_module(module: str, args: list[str], cwd: Path, monkeypatch) -> None:
    monkeypatch.chdir(cwd)
    main = importlib.import_module(module).main
    try:
        rc = main(_small_counts(args))
    except SystemExit as stop:  # argparse's --help
        rc = stop.code
    assert rc in (0, None), (module, args, rc)


@pytest.mark.parametrize(("page", "command"), BASH, ids=[f"{p}:{c[:60]}" for p, c in BASH])
def test_bash_block_command_runs(page: str, command: str, workspace, monkeypatch,
                                 capsys) -> None:
    words = _substitute(command, workspace)
    cwd = workspace["cwd"]
    if words[:2] == ["python", "-m"]:
        module, args = words[2], words[3:]
        if module == "dgan.train":
            _run_train(args, cwd, monkeypatch, capsys)
        else:
            _run_module(module, args, cwd, monkeypatch)
    elif words[0] == "make":
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        done = subprocess.run(["make", "-n", *targets], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    else:
        # The docs assume the project's environment is active: its python comes first.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        done = subprocess.run(shlex.join(words), shell=True, cwd=cwd, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PATH": path})
        assert done.returncode == 0, (command, done.stderr)


@pytest.mark.parametrize(("page", "command"), CONSOLE_TRAIN,
                         ids=[f"{p}:{c[:60]}" for p, c in CONSOLE_TRAIN])
def test_console_block_train_command_composes(page: str, command: str) -> None:
    args = shlex.split(command)[3:]
    cfg = compose_train(_train_overrides(args))
    assert cfg.kimg > 0
