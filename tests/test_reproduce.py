"""`make reproduce`: every job of its multiruns composes, and its reports group by swept keys."""

from __future__ import annotations

import itertools
import shlex
import subprocess
from collections import Counter

import pytest

from dgan.assembly.builder import build_run

from .conftest import REPO, compose_train

TARGETS = ("reproduce-demo", "reproduce-toy", "reproduce-limited", "reproduce-augment",
           "reproduce-projected", "reproduce-insgen", "reproduce-overfit",
           "reproduce-overfit OVERFIT_ARMS=none stylegan2 ada stylegan2_ada stylegan2_clean0",
           "reproduce-tcond")


def _commands(target: str) -> list[list[str]]:
    """The commands ``make TARGET [VAR=VALUE]`` would run (``make -n``), split into words."""
    name, _, variable = target.partition(" ")
    out = subprocess.run(["make", "-n", "-B", name, *([variable] if variable else []),
                          "REPRO_DIR=/tmp/repro", "STAMP="],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in out.replace("\\\n", " ").splitlines() if line.strip()]


def _jobs(words: list[str]) -> list[list[str]]:
    """The override lists of one ``dgan.train -m`` command (its comma sweeps expanded)."""
    start = words.index("-m", words.index("dgan.train")) + 1
    choices = [[f"{key}={value}" for value in values.split(",")]
               for key, values in (w.split("=", 1) for w in words[start:])
               if not key.startswith("hydra.")]
    return [list(job) for job in itertools.product(*choices)]


@pytest.mark.parametrize("target", TARGETS)
def test_every_reproduce_job_builds(target: str, tmp_path) -> None:
    commands = _commands(target)
    trains = [w for w in commands if "dgan.train" in w]
    reports = [w for w in commands if "dgan.sweep_report" in w]
    assert trains and len(reports) == 1, commands
    swept: set[str] = set()
    settings: Counter[tuple[str, ...]] = Counter()
    for words in trains:
        # a stopped target continues when run again, and a pre-empted job is not "done"
        assert "resume=auto" in words, words
        exit_code = next(w for w in words if w.startswith("callbacks.preemption.exit_code="))
        assert int(exit_code.partition("=")[2]) != 0
        jobs = _jobs(words)
        settings.update(tuple(o for o in job if not o.startswith("seed=")) for job in jobs)
        for k, overrides in enumerate(jobs):
            swept |= {o.split("=", 1)[0] for o in overrides}
            if k in (0, len(jobs) - 1):  # the two ends of the sweep differ in every key
                build_run(compose_train(overrides, tmp_path / f"job{k}"))
            else:
                compose_train(overrides, tmp_path / f"job{k}")
    # a comparison: at least two settings, each over at least 3 seeds
    assert len(settings) >= 2 and min(settings.values()) >= 3, settings
    group_by = reports[0][reports[0].index("--group-by") + 1].split(",")
    assert set(group_by) <= swept and "seed" not in group_by
    if "--compare" in reports[0]:
        key, _, base = reports[0][reports[0].index("--compare") + 1].partition("=")
        assert key in group_by
        # the base is an arm the target runs (or a job left at that value: its config's)
        values = {o.partition("=")[2] for job in settings for o in job if o.startswith(key + "=")}
        assert base in values, (key, base, values)
