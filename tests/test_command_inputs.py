"""Bad inputs to every command end in one ``error:`` line (issue 27, items 3 and 4): checkpoint
files of every kind that is not a dgan checkpoint, output directories that cannot be made,
non-finite numbers, resolutions out of range, metrics nobody logged, bench counts."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from dgan.core.errors import ConfigError
from dgan.files.checkpoints import read_checkpoint
from dgan.inference.loading import read_pickle_checkpoint

from .conftest import QUIET_TOY, fit_in_process

MARKER = "ran.txt"


class _RunsCode:
    """Unpickling this would run code (it writes a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    fit_in_process([*QUIET_TOY, "kimg=0.128"], run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture
def bad_files(tmp_path: Path, checkpoint: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.ckpt" for name in (
        "empty", "truncated", "text", "pickle", "code_zip", "data_zip", "lightning")}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(checkpoint.read_bytes()[:1000])
    files["text"].write_text("these are not weights\n")
    with open(files["pickle"], "wb") as f:
        pickle.dump({"G_ema": _RunsCode(tmp_path / MARKER)}, f)
    torch.save({"dgan": _RunsCode(tmp_path / MARKER)}, files["code_zip"])
    with zipfile.ZipFile(files["data_zip"], "w") as archive:
        archive.writestr("00000/img00000000.png", b"")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, files["lightning"])
    return files


EXPECTED = {
    "empty": "is empty (0 bytes), not a checkpoint",
    "truncated": "is truncated or damaged",
    "text": "is a text file, not a checkpoint",
    "pickle": "is a pickle, not a dgan checkpoint; a StyleGAN2-ADA / Diffusion-GAN network "
              "pickle goes to pkl=",
    "code_zip": "holds objects a dgan checkpoint never holds",
    "data_zip": "is a zip archive but not a checkpoint",
    "lightning": "a Lightning checkpoint, but not one written by dgan",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_bad_checkpoint_file_says_what_it_is_and_runs_nothing(bad_files, tmp_path, name
                                                                ) -> None:
    with pytest.raises(ConfigError) as info:
        read_checkpoint(bad_files[name], "resume")
    message = str(info.value)
    assert message.startswith(f"resume={bad_files[name]}: {EXPECTED[name]}"), message
    assert "\n" not in message and "weights_only" not in message
    assert not (tmp_path / MARKER).exists()


def test_train_resume_and_init_take_the_same_reader(bad_files, tmp_path) -> None:
    from dgan.assembly.builder import build_run

    from .conftest import compose_train

    for key in ("resume", "init"):
        cfg = compose_train([*QUIET_TOY, "kimg=1", f"{key}={bad_files['truncated']}"],
                            tmp_path / key)
        with pytest.raises(ConfigError, match=f"{key}=.*is truncated or damaged"):
            build_run(cfg)


def test_pkl_and_convert_name_a_dgan_checkpoint_and_refuse_code(checkpoint, bad_files,
                                                                 tmp_path) -> None:
    with pytest.raises(ConfigError, match="is a dgan checkpoint already, not a network pickle"):
        read_pickle_checkpoint(checkpoint, "SRC")
    with pytest.raises(ConfigError, match="is empty"):
        read_pickle_checkpoint(bad_files["empty"], "pkl")
    with pytest.raises(ConfigError, match="refusing .*nothing in it was run"):
        read_pickle_checkpoint(bad_files["pickle"], "pkl")
    assert not (tmp_path / MARKER).exists()


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    # One error line; a long list of what is valid goes on the indented lines after it.
    assert lines and lines[0].startswith("error: "), lines
    assert all(line.startswith("  ") for line in lines[1:]), lines
    return lines[0]


def test_generate_outdir_under_a_file_and_nan_truncation(checkpoint, tmp_path, capsys) -> None:
    from dgan import generate

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert generate.main([f"ckpt={checkpoint}", f"outdir={blocker}/out"]) == 2
    assert "outdir=" in _one_error_line(capsys)
    assert generate.main([f"ckpt={checkpoint}", "outdir=/proc/forbidden/out"]) == 2
    assert "cannot make a directory in /proc" in _one_error_line(capsys)
    assert generate.main([f"ckpt={checkpoint}", f"outdir={tmp_path}/o", "trunc=nan"]) == 2
    assert _one_error_line(capsys).startswith("error: trunc=nan is not valid; expected a finite")
    assert not (tmp_path / "o").exists()


def test_evaluate_nan_seed_and_outdir_under_a_file(checkpoint, tmp_path, capsys) -> None:
    from dgan import evaluate

    assert evaluate.main([f"ckpt={checkpoint}", "metrics=[mode_coverage100]", "seed=nan"]) == 2
    assert _one_error_line(capsys).startswith("error: seed=nan is not valid")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert evaluate.main([f"ckpt={checkpoint}", "metrics=[mode_coverage100]",
                          f"outdir={blocker}/x"]) == 2
    assert "is a file" in _one_error_line(capsys)


def test_prepare_resolution_beyond_1024_and_dest_under_a_file(tmp_path, capsys) -> None:
    from dgan.data import prepare

    with pytest.raises(SystemExit) as info:
        prepare.main(["--source=digits", f"--dest={tmp_path}/d.zip", "--resolution=4096"])
    assert info.value.code == 2
    assert "power of two in [4, 1024]" in _one_error_line(capsys)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        prepare.main(["--source=digits", f"--dest={blocker}/d.zip"])
    assert "is a file" in _one_error_line(capsys)
    assert not list(tmp_path.glob("*.zip"))


def test_sweep_report_of_a_metric_nobody_logged_names_the_logged_ones(tmp_path, capsys) -> None:
    from dgan import sweep_report

    for num in range(2):
        job = tmp_path / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={num}\n")
        (job / "metrics.jsonl").write_text(json.dumps({"kimg": 1.0, "fid": 30.0 + num}) + "\n")
    assert sweep_report.main([str(tmp_path), "--metric", "fdi"]) == 2
    line = _one_error_line(capsys)
    assert "--metric=fdi: no job" in line and "(closest: fid)" in line
    assert not (tmp_path / "sweep_report.csv").exists()


@pytest.mark.parametrize("argv", [["--steps=0"], ["--repeats=nan"], ["--batch=-1"],
                                  ["--presets=nosuch"], ["--device=abc"]])
def test_bench_counts_presets_and_device_are_checked_first(argv, capsys) -> None:
    from dgan import bench
    from dgan.benchmarks.training import resolve_device

    with pytest.raises(SystemExit) as info:
        resolve_device(bench.parse_args([*argv, "--tiny"]).device)
    assert info.value.code == 2
    _one_error_line(capsys)
