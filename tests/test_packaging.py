"""Packaging, dependencies and loggers: conf/ in the wheel, dgan-train from an installed wheel,
declared dependencies, TensorBoard images, W&B's headline summary and best alias (issue 17,
items 7 and 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

from dgan.assembly.builder import build_run
from dgan.tracking.wandb_offline import find_wandb_file, read_chunks

from .conftest import CONF, REPO, compose_train

TINY = ["experiment=gaussians25", "model.generator.hidden=32", "model.discriminator.hidden=32",
        "model.batch_size=64", "kimg=0.5"]


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of a clean copy of the source (the checkout keeps no build/ folder)."""
    src = tmp_path / "src_copy"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", src / "src", symlinks=True, ignore=skip)
    shutil.copytree(CONF, src / "conf", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("dgan-*.whl")
    return wheel


def test_wheel_carries_conf_and_runs_dgan_train_from_another_directory(tmp_path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n[len("dgan/conf/"):] for n in archive.namelist()
                    if n.startswith("dgan/conf/")}
    assert packaged == {str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml")}
    # A fresh venv with the wheel installed (not editable); the dependencies come from this
    # interpreter's site-packages through a .pth file, so nothing is downloaded.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DGAN_CONFIG_DIR")}
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import dgan.config.paths as p; print(p.__file__, p.CONFIG_DIR)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True)
    module, config_dir = where.stdout.split()
    assert module.startswith(str(site)) and config_dir == str(site / "dgan" / "conf")
    res = subprocess.run([str(venv / "bin" / "dgan-train"), "experiment=gaussians25", "kimg=1"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[dgan] finished at kimg 1.0" in res.stdout
    assert list(elsewhere.glob("outputs/*/*/checkpoints/last.ckpt"))


def test_dependencies_are_bounded_and_used() -> None:
    # The installed metadata (make install reinstalls whenever pyproject.toml changes).
    requires = metadata.requires("dgan") or []
    core = {r.split(";")[0].replace(" ", "") for r in requires if "extra ==" not in r}
    names = {r.split(">")[0].split("<")[0].split("=")[0]: r for r in core}
    # The metrics are torchmetrics Metric objects (dgan.metrics): declared, bounded, imported.
    assert "<" in names["torchmetrics"]
    assert "from torchmetrics import Metric" in (REPO / "src/dgan/metrics/feature_stats.py"
                                                 ).read_text()
    assert "<" in names["wandb"] and "<" in names["torch-fidelity"]
    assert "rich" in names and "rich.progress" in (REPO / "src/dgan/callbacks/progress.py"
                                                    ).read_text()
    extras = {r.split(";")[1].split("==")[1].strip(" '\"") for r in requires if "extra ==" in r}
    assert {"tensorboard", "notebook", "dev", "sweep"} <= extras
    assert any(r.startswith("jupyterlab") and "notebook" in r for r in requires)
    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")
               if e.value.startswith("dgan.")}
    assert set(scripts) >= {"dgan-train", "dgan-generate", "dgan-evaluate", "dgan-prepare",
                            "dgan-bench", "dgan-convert", "dgan-sweep-report"}


def test_make_install_uses_the_constraints_and_the_extras() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "-c constraints.txt" in makefile
    for extra in ("tensorboard", "notebook", "dev"):
        assert extra in makefile.split("EXTRAS ?=")[1].splitlines()[0]
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    names = {line.split("==")[0].lower() for line in pins}
    assert all("==" in line for line in pins)
    assert {"wandb", "torch-fidelity", "lightning", "hydra-core"} <= {
        n.replace("_", "-") for n in names}
    assert not names & {"torch", "torchvision", "dgan"}


def test_jupyter_lab_is_installed() -> None:
    res = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "lab", "--version"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip()[0].isdigit(), res.stderr


def test_tensorboard_logger_gets_scalars_and_images(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_train([*TINY, "logger=tensorboard", "callbacks.samples.every_kimg=0.25",
                         "trainer.log_every_n_steps=2"], tmp_path / "run")
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"samples", "diagnostics/dynamics"} <= set(events.Tags()["images"])
    assert "overfit/r_t" in events.Tags()["scalars"]
    # Two ticks and the grid drawn before training (fakes_init.png), at step 0.
    assert len(events.Images("samples")) == 3 and events.Images("samples")[0].step == 0
    assert "loss/G" in events.Tags()["scalars"]


def test_wandb_headline_has_a_best_summary_and_best_ckpt_the_best_alias(tmp_path) -> None:
    import wandb
    from wandb.proto import wandb_internal_pb2 as pb

    cfg = compose_train([*TINY, "logger=wandb", "logger.wandb.mode=offline",
                         "logger.wandb.log_model=true", "metrics.every_kimg=0.25"],
                        tmp_path / "run")
    try:
        run = build_run(cfg)
        run.trainer.fit(run.module, datamodule=run.datamodule)
    finally:
        wandb.finish()
        # finish hands the last records to wandb's service process; teardown returns once it
        # has written them (late on a busy machine).
        wandb.teardown()
    summaries, aliases = {}, []
    for data in read_chunks(find_wandb_file(tmp_path / "run").read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "metric" and record.metric.name:
            summaries[record.metric.name] = record.metric.summary
        elif kind == "artifact":
            aliases += list(record.artifact.aliases)
    assert "metrics/modes_covered" in summaries, (summaries.keys(), aliases)
    headline = summaries["metrics/modes_covered"]
    assert headline.max and not headline.min  # more modes covered is better
    assert "best" in aliases and "latest" in aliases
