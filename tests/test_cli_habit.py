"""One habit for every command: ``key=value`` and ``--key=value``; the dgan-* console scripts
(issue 17, item 9)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dgan.config.cli_args import dashed, parse_key_values, strip_dashes
from dgan.generate import GenerateOptions
from dgan.train import hydra_argv

BIN = Path(sys.executable).parent
SCRIPTS = ("dgan-train", "dgan-generate", "dgan-evaluate", "dgan-prepare", "dgan-bench",
           "dgan-convert", "dgan-sweep-report", "dgan-project", "dgan-style-mixing", "dgan-video")


def test_train_rewrites_long_options_and_leaves_hydras_flags() -> None:
    assert hydra_argv(["--kimg=1", "seed=2", "-m", "--multirun", "--cfg", "job",
                       "--config-name=train", "--help", "+x=1"]) == [
        "kimg=1", "seed=2", "-m", "--multirun", "--cfg", "job", "--config-name=train", "--help",
        "+x=1"]


def test_key_value_commands_take_both_forms() -> None:
    opts, _ = parse_key_values(["--seeds=0-3", "trunc=0.7", "--grid=false"], GenerateOptions)
    assert (opts.seeds, opts.trunc, opts.grid) == ("0-3", 0.7, False)
    assert strip_dashes("--a=b") == "a=b" and strip_dashes("--help") == "--help"


def test_argparse_commands_get_key_value_as_options() -> None:
    assert dashed(["source=digits", "max_images=8", "labels_from_folders=true", "tiny=false",
                   "--dest=x.zip", "--split", "train"]) == [
        "--source=digits", "--max-images=8", "--labels-from-folders", "--dest=x.zip",
        "--split", "train"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_scripts_are_installed(script) -> None:
    assert (BIN / script).is_file(), f"{script}: run make install (pip install -e .)"


def test_train_cli_takes_long_options(tmp_path) -> None:
    res = subprocess.run([str(BIN / "dgan-train"), "--experiment=gaussians25", "--kimg=0",
                          f"--hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "error: kimg=0 is not valid; expected a number in (0, " in res.stderr


def test_generate_cli_takes_long_options(tmp_path) -> None:
    res = subprocess.run([str(BIN / "dgan-generate"), f"--ckpt={tmp_path / 'none.ckpt'}",
                          f"--outdir={tmp_path}", "--seeds=0-3"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: ckpt={tmp_path / 'none.ckpt'}: no such checkpoint")


def test_prepare_cli_takes_key_value(tmp_path) -> None:
    dest = tmp_path / "digits.zip"
    res = subprocess.run([str(BIN / "dgan-prepare"), "source=digits", f"dest={dest}",
                          "max_images=8"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(dest) as archive:
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == 8
