"""Help and hints (issue 25, item 5): dgan.train's own --help page, the metric that fits the
run's dataset, readable precision/recall names, the weights override in the missing-weights
error, and the dgan-sweep-report script."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from dgan.config.help_page import config_groups, experiments, help_page
from dgan.core.errors import ConfigError
from dgan.evaluate import EvaluateOptions, check_metric_names, suggested_metrics
from dgan.evaluate import run as evaluate_run
from dgan.metrics import registry
from dgan.metrics.feature_extractors import WeightsUnavailableError
from dgan.metrics.registry import check_weights_available

from .conftest import CONF, REPO, compose_train

HELP_MAX_LINES = 120


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dgan.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_train_help_is_dgans_own_page() -> None:
    done = _cli("--help")
    assert done.returncode == 0, done.stderr
    page = done.stdout
    assert len(page.splitlines()) <= HELP_MAX_LINES
    for text in ("python -m dgan.generate", "python -m dgan.evaluate", "kimg=N",
                 "experiment=NAME", "debug=default", "resume=auto", "init=PATH",
                 "checkpoints/last.ckpt", "train.log", "metrics.csv", "--cfg job",
                 "--hydra-help", "trainer=gpu"):
        assert text in page, text
    # Every experiment of conf/experiment, and every config group with its choices.
    for path in (CONF / "experiment").glob("*.yaml"):
        assert f"  {path.stem} " in page, path.stem
    assert "model=" in page and "stylegan2_base" in page and "projected_base" in page
    assert "== Config ==" not in page  # Hydra's dump is not the help page
    assert _cli("-h").stdout == page


def test_hydras_outputs_stay_one_flag_away() -> None:
    hydra_help = _cli("--hydra-help")
    assert hydra_help.returncode == 0 and "Hydra" in hydra_help.stdout
    job = _cli("experiment=gaussians25", "--cfg", "job")
    assert job.returncode == 0 and "kimg:" in job.stdout and "diffusion:" in job.stdout


def test_help_lists_come_from_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n# My experiment. More words.\nkimg: 1\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("{}\n")
    assert experiments(tmp_path) == [("mine", "My experiment")]
    assert config_groups(tmp_path) == [("model", ["tiny"])]
    assert "mine" in help_page(tmp_path)


def test_evaluate_suggests_the_metric_of_the_runs_dataset() -> None:
    digits = {"_target_": "dgan.data.digits.DigitsDataset"}
    toy = {"_target_": "dgan.data.toy.ToyDataset"}
    images = {"_target_": "dgan.data.images.ImageDataset", "path": "x.zip"}
    assert "fid_digits2k_full" in suggested_metrics(digits)
    assert "mode_coverage" in suggested_metrics(toy)
    assert "fid50k_full" in suggested_metrics(images) and "fetch_weights" in suggested_metrics(
        images)
    with pytest.raises(ConfigError, match=r"fid_digits2k_full"):
        check_metric_names([], suggested_metrics(digits))


def test_evaluate_of_a_run_without_metrics_suggests_digits_metrics(tmp_path: Path) -> None:
    from dgan.assembly.builder import build_run
    from dgan.config.debug import apply_debug

    cfg = compose_train(["experiment=digits_stylegan2", "debug=default", "kimg=0.008"],
                        tmp_path / "run")
    apply_debug(cfg)
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError) as excinfo:
        evaluate_run(EvaluateOptions(ckpt=str(ckpt)))
    message = str(excinfo.value)
    assert "metrics=[fid_digits2k_full" in message and "fid50k" not in message


def test_precision_recall_names_that_read_and_the_old_ones() -> None:
    for new, old, count in (("pr_digits2k_k3_full", "pr_digits2k3_full", 2000),
                            ("pr_digits500_k3_full", "pr_digits5003_full", 500),
                            ("pr50k_k3_full", "pr50k3_full", 50_000),
                            ("pr10k_k3_torchvision_full", "pr10k3_torchvision_full", 10_000)):
        assert registry.lookup_metric(new)[1] == count, new
        assert registry.lookup_metric(old)[1] == count, old
    assert (CONF / "metrics" / "digits.yaml").read_text().count("pr_digits2k_k3_full") == 1


def test_missing_weights_name_the_override_and_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as excinfo:
        check_weights_available(["fid50k_full", "pr50k_k3_full"], tmp_path)
    message = str(excinfo.value)
    assert "metrics.weights_dir=DIR" in message
    assert "python -m dgan.metrics.fetch_weights DIR" in message
    assert "vgg16" in message.lower() and "inception" in message.lower()


def test_sweep_report_has_a_console_script() -> None:
    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert scripts.get("dgan-sweep-report") == "dgan.sweep_report:main"
    assert 'dgan-sweep-report = "dgan.sweep_report:main"' in (REPO / "pyproject.toml").read_text()
