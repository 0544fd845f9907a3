"""The remaining bad inputs of issue 33 (item 4), one test per case: the former tracebacks, the
hang, the nonsense that was accepted, a valid form that was refused and the unclear messages
each end in one short ``error:`` line (a long list of choices on the indented lines after it)."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from dgan.assembly.builder import build_run, check_run_config
from dgan.config.cli_args import parse_key_values
from dgan.config.compose import check_overrides
from dgan.config.rules import MAX_KIMG, MAX_TRUNCATION
from dgan.core.errors import ConfigError
from dgan.core.messages import ERROR_PREFIX, MAX_ERROR_LINE, one_line

from .conftest import QUIET_TOY, compose_train, fit_in_process

TOY = [*QUIET_TOY, "kimg=0.128"]


def _config_error(tmp_path: Path, *overrides: str, check=check_run_config) -> str:
    """The error ``check`` raises for the toy run with ``overrides`` (its one-line form)."""
    cfg = compose_train([*TOY, *overrides], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        check(cfg)
    return _checked_layout(str(info.value))


def _checked_layout(message: str) -> str:
    """Every line of the printed error is short (pytest's long temporary folders counted as a
    short path); the lines after the first are its list."""
    lines = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/ ]+", "/tmp/t",
                   ERROR_PREFIX + message).splitlines()
    assert all(len(line) <= MAX_ERROR_LINE for line in lines), lines
    assert all(line.startswith("  ") for line in lines[1:]), lines
    return one_line(message)


def _error_lines(capsys) -> list[str]:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines and lines[0].startswith(ERROR_PREFIX), lines
    _checked_layout("\n".join(lines)[len(ERROR_PREFIX):])
    return lines


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("toy")
    fit_in_process(TOY, run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


# ----------------------------------------------------------------------------- tracebacks


def test_a_precision_the_networks_cannot_run_lists_the_valid_ones(tmp_path) -> None:
    message = _config_error(tmp_path, "trainer.precision=64-true")
    assert message.startswith("trainer.precision='64-true' is not valid; expected one of ")
    assert "32-true" in message and "bf16-mixed" in message
    check_run_config(compose_train([*TOY, "trainer.precision=32"], tmp_path / "ok"))


def test_several_cpu_processes_without_dgans_ddp_point_to_ddp_cpu(tmp_path) -> None:
    from dgan.config.launch import check_launch

    message = _config_error(tmp_path, "trainer.devices=2", check=check_launch)
    assert message.startswith("trainer.devices=2: 2 processes need dgan's DDP strategy")
    assert "trainer=ddp_cpu trainer.devices=2" in message
    check_launch(compose_train([*TOY, "trainer=ddp_cpu", "trainer.devices=2"], tmp_path / "ok"))


def test_an_interpolation_of_no_key_names_the_key_and_the_interpolation(tmp_path) -> None:
    message = _config_error(tmp_path, "diffusion.t_max=${nope}")
    assert message.startswith("diffusion.t_max=${nope}: interpolation key 'nope' not found")


def test_train_names_a_broken_interpolation_before_the_debug_overlay_reads_it(tmp_path,
                                                                             capsys) -> None:
    from dgan import train

    cfg = compose_train([*TOY, "debug=default", "model.generator.hidden=${nope}"],
                        tmp_path / "run")
    with pytest.raises(SystemExit) as info:
        train.job(cfg)
    assert info.value.code == 2
    (line,) = _error_lines(capsys)
    assert line.startswith("error: model.generator.hidden=${nope}: interpolation key 'nope'")


def test_a_cache_dir_under_a_file_stops_before_training(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cfg = compose_train([*TOY, "metrics=toy"], tmp_path / "run")
    cfg.paths.cache_dir = str(blocker / "cache")
    with pytest.raises(ConfigError) as info:
        build_run(cfg)
    assert _checked_layout(str(info.value)).startswith(
        f"paths.cache_dir={blocker}/cache: cannot be a directory, {blocker} is a file")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_sweep_report_csv_under_a_file_is_one_line_before_any_work(tmp_path, capsys) -> None:
    from dgan import sweep_report

    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job / "metrics.jsonl").write_text(json.dumps({"kimg": 1.0, "fid": 30.0}) + "\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert sweep_report.main([str(tmp_path / "sweep"), "--csv", f"{blocker}/r.csv"]) == 2
    (line,) = _error_lines(capsys)
    assert line.startswith(f"error: --csv={blocker}/r.csv: cannot be a directory")
    assert not (tmp_path / "sweep" / sweep_report.PNG_NAME).exists()


def test_a_run_directory_that_stops_taking_files_is_one_line_and_keeps_them(
        tmp_path, capsys, monkeypatch) -> None:
    """The run directory made read-only mid-run: (as root, chmod does not stop writes) the CSV
    writer fails as it would, with EACCES, from its second write on."""
    from dgan import train
    from dgan.tracking import run_history

    run_dir = tmp_path / "run"
    metrics_csv = run_dir / "metrics.csv"
    written: list[bytes] = []
    save = run_history._AppendingWriter.save

    def save_once(self) -> None:
        if not written:
            save(self)
            if metrics_csv.is_file():  # the first save that wrote rows
                written.append(metrics_csv.read_bytes())
            return
        raise PermissionError(errno.EACCES, "Permission denied", str(metrics_csv))

    monkeypatch.setattr(run_history._AppendingWriter, "save", save_once)
    cfg = compose_train([*QUIET_TOY, "kimg=0.384", "+logger.csv.flush_logs_every_n_steps=1",
                         "trainer.log_every_n_steps=1"], run_dir)
    with pytest.raises(SystemExit) as info:
        train.job(cfg)
    assert info.value.code == train.EXIT_WRITE_FAILED
    (line,) = _error_lines(capsys)
    assert line.startswith(f"error: cannot write {metrics_csv} (Permission denied)")
    assert "resume=auto" in line
    assert written and metrics_csv.read_bytes() == written[0]  # the rows it had, unchanged


# ----------------------------------------------------------------------------- the hang


def test_a_length_beyond_the_documented_maximum_is_refused(tmp_path) -> None:
    assert _config_error(tmp_path, "kimg=1e30") == (
        f"kimg=1e+30 is not valid; expected a number in (0, {MAX_KIMG}]")
    check_run_config(compose_train([*QUIET_TOY, f"kimg={MAX_KIMG}"], tmp_path / "ok"))


# ----------------------------------------------------------------------------- accepted nonsense


@pytest.mark.parametrize("override", ["model.generator.z_dim=0",
                                      "model.generator.hidden=100000000"])
def test_debug_default_checks_the_users_values_before_it_shrinks_them(tmp_path, override
                                                                     ) -> None:
    from dgan.config.debug import apply_debug

    message = _config_error(tmp_path, "debug=default", override, check=apply_debug)
    assert message.startswith(f"{override} is not valid; expected an integer in [1, ")
    # The real run refuses the same value with the same words.
    assert _config_error(tmp_path, override).startswith(f"{override} is not valid")


def test_generate_truncation_beyond_its_range_names_the_range(toy_checkpoint, tmp_path,
                                                              capsys) -> None:
    from dgan import generate

    assert generate.main([f"ckpt={toy_checkpoint}", f"outdir={tmp_path}/o", "trunc=1e9"]) == 2
    (line,) = _error_lines(capsys)
    assert line == (f"error: trunc=1000000000.0 is not valid; expected a number in "
                    f"[-{MAX_TRUNCATION:g}, {MAX_TRUNCATION:g}]")
    assert not (tmp_path / "o").exists()
    for trunc in (-MAX_TRUNCATION, MAX_TRUNCATION):
        opts, _ = parse_key_values([f"trunc={trunc}"], generate.GenerateOptions)
        assert opts.trunc == trunc


def test_evaluate_refuses_a_metric_of_no_samples(toy_checkpoint, tmp_path, capsys) -> None:
    from dgan import evaluate

    assert evaluate.main([f"ckpt={toy_checkpoint}", "metrics=[mode_coverage0]",
                          f"outdir={tmp_path}/e"]) == 2
    (line,) = _error_lines(capsys)
    assert line == ("error: metrics: mode_coverage0 selects 0 samples; give a count, e.g. "
                    "mode_coverage2000")
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------ refused although valid


def test_bench_takes_override_as_its_help_shows_it() -> None:
    from dgan import bench

    args = bench.command_line(["--tiny", "--override", "seed=1", "steps=1",
                               "--override=kimg=1"])
    opts = bench.parse_args(args)
    assert opts.overrides == ("seed=1", "kimg=1")
    assert opts.steps == 1 and opts.tiny


# ----------------------------------------------------------------------------- unclear


def _override_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        check_overrides(["experiment=gaussians25", *overrides])
    return _checked_layout(str(info.value))


def test_an_override_without_a_key_says_so() -> None:
    assert _override_error("=5") == "=5: no key before '='; write KEY=VALUE, e.g. kimg=5"


def test_a_trainer_argument_the_config_lacks_names_the_trainers_that_set_it() -> None:
    message = _override_error("trainer.strategy=ddp")
    assert message.startswith("trainer.strategy=ddp: unknown key; this trainer config sets no "
                              "strategy: choose trainer=ddp|ddp_cpu or add it with "
                              "+trainer.strategy=ddp; valid keys: trainer.accelerator")


def test_a_sweep_without_multirun_says_add_m() -> None:
    assert _override_error("seed=0,1").startswith("seed=0,1: a sweep runs only as a multirun; "
                                                  "add -m")
    check_overrides(["experiment=gaussians25", "seed=0,1", "-m"])


def test_project_of_a_points_generator_is_refused_before_any_weights_lookup(
        toy_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    from dgan import project

    def no_lookup(*args, **kwargs):
        raise AssertionError("VGG16 looked up for a generator that cannot be projected")

    monkeypatch.setattr(project, "load_lpips", no_lookup)
    target = tmp_path / "t.png"
    Image.new("RGB", (32, 32)).save(target)
    assert project.main([f"ckpt={toy_checkpoint}", f"target={target}",
                         f"outdir={tmp_path}/p"]) == 2
    (line,) = _error_lines(capsys)
    assert line.startswith("error: MLPGenerator makes 2-D points, not images: it cannot be "
                           "projected")


# Inputs whose error lists many choices (keys, experiments, metrics, options, presets).
LISTING_OVERRIDES = [["experiment=nosuch"], ["trainer.foo=1"], ["model.generator.hiden=3"]]
LISTING_CONFIGS = [["+learning_rate=1"], ["+trainer.foo=1"], ["+model.foo=1"],
                   ["metrics.metrics=[nosuch]"], ["+metrics.foo=1"]]


@pytest.mark.parametrize("overrides", LISTING_OVERRIDES)
def test_override_errors_keep_their_lists_below_a_short_line(overrides) -> None:
    message = _override_error(*overrides)
    assert len(message) > MAX_ERROR_LINE  # the list is there, just not on the first line


@pytest.mark.parametrize("overrides", LISTING_CONFIGS)
def test_config_errors_keep_their_lists_below_a_short_line(tmp_path, overrides) -> None:
    assert len(_config_error(tmp_path, *overrides)) > MAX_ERROR_LINE


def test_command_errors_keep_their_lists_below_a_short_line(capsys) -> None:
    from dgan import bench, evaluate, generate

    assert generate.main(["nosuch=1"]) == 2
    _error_lines(capsys)
    assert evaluate.main(["metrics=[nosuch]", "images=."]) == 2
    assert len(" ".join(_error_lines(capsys))) > MAX_ERROR_LINE
    with pytest.raises(SystemExit):
        bench.parse_args(["--presets=nosuch"])
    assert len(" ".join(_error_lines(capsys))) > MAX_ERROR_LINE
