"""Every bad input stops before any work with one line naming the key (issue 17, item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dgan.assembly.builder import build_run
from dgan.config.instantiation import describe, fits
from dgan.core.errors import ConfigError
from dgan.core.messages import one_line
from dgan.files.writable import check_creatable_dir, check_writable_dir

from .conftest import compose_train

TINY = ["experiment=gaussians25", "model.generator.hidden=32", "model.discriminator.hidden=32",
        "model.batch_size=64", "kimg=0.5"]


def _error(tmp_path: Path, *overrides: str) -> str:
    cfg = compose_train([*TINY, *overrides], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        build_run(cfg)
    message = str(info.value)
    # One error line; a long list of valid choices follows it on indented lines.
    assert all(line.startswith("  ") for line in message.splitlines()[1:])
    return one_line(message)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.batch_size='64'", "model.batch_size='64' is not valid; expected an integer"),
        ("model.generator.hidden=[32]", "model.generator.hidden=[32] is not valid; expected an "
                                        "integer"),
        ("model.g_optimizer.lr=fast", "model.g_optimizer.lr='fast' is not valid; expected a finite "
                                      "number"),
        ("callbacks.samples.every_kimg=[1]", "callbacks.samples.every_kimg=[1] is not valid"),
        ("kimg=[1]", "kimg=[1] is not valid; expected a number"),
        ("seed=abc", "seed='abc' is not valid; expected an integer"),
        ("metrics.metrics=fid50k_full", "metrics.metrics='fid50k_full' is not valid; expected a "
                                        "list, e.g. [fid50k_full]"),
    ],
)
def test_a_value_of_the_wrong_type_names_key_value_and_type(tmp_path, override, expected
                                                            ) -> None:
    assert expected in _error(tmp_path, override)


def test_an_unknown_key_lists_the_valid_keys(tmp_path) -> None:
    message = _error(tmp_path, "+model.generator.hiddenn=3")
    assert message.startswith("model.generator.hiddenn: unknown key for ")
    assert "valid keys: " in message and "hidden" in message.split("valid keys: ")[1]


def test_a_metric_that_selects_no_samples_is_refused(tmp_path) -> None:
    assert _error(tmp_path, "metrics.metrics=[fid0k_full]") == (
        "metrics.metrics: fid0k_full selects 0 samples; give a count, e.g. fid50k_full")
    message = _error(tmp_path, "metrics.metrics=[mode_coverage0]")
    assert "mode_coverage0 selects 0 samples" in message


def test_a_top_level_plus_key_nothing_reads_is_refused(tmp_path) -> None:
    message = _error(tmp_path, "+learning_rate=0.1")
    assert message.startswith("+learning_rate: no part of dgan reads a top-level key")
    assert "top-level keys: " in message and "kimg" in message and "model" in message


def test_double_plus_on_existing_keys_still_works(tmp_path) -> None:
    cfg = compose_train([*TINY, "++kimg=0.25", "++diffusion.ts_dist=uniform"], tmp_path / "run")
    assert build_run(cfg).module.total_kimg == 0.25


def test_wandb_online_without_credentials_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    message = _error(tmp_path, "logger=wandb", "logger.wandb.mode=online")
    assert message.startswith("logger.wandb.mode='online' needs a W&B API key")
    assert "logger.wandb.mode=offline" in message


def test_resume_from_another_model_says_it_does_not_fit_before_kimg(tmp_path) -> None:
    cfg = compose_train(TINY, tmp_path / "run")
    run = build_run(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    # The same kimg (already reached) and another width: the width is what is wrong.
    message = _error(tmp_path, "model.generator.hidden=64", "resume=auto")
    assert "does not fit this model" in message and "already reached" not in message


def test_an_unwritable_run_directory_is_refused(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"hydra.run.dir=.*a_file.*is a file"):
        check_creatable_dir(blocker / "run", "hydra.run.dir")
    with pytest.raises(ConfigError, match="is a file"):
        check_writable_dir(blocker / "run", "hydra.run.dir")
    check_writable_dir(tmp_path / "new" / "run", "hydra.run.dir")
    assert (tmp_path / "new" / "run").is_dir()


def test_cli_unwritable_run_dir_is_one_line_before_hydra(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    res = subprocess.run([sys.executable, "-m", "dgan.train", *TINY,
                          f"hydra.run.dir={blocker}/run"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: hydra.run.dir={blocker}/run: cannot be a directory, {blocker} is a file; "
        "choose another directory"]


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (3, int, True), (3.0, int, True), (3.5, int, False), ("3", int, False),
        (True, int, False), (2, float, True), ("x", float, False), (None, int | None, True),
        ("a", list[str], False), (["a"], list[str], True), ([1], list[str], True),
        ([0.0, 0.99], tuple[float, float], True), ([0.0], tuple[float, float], False),
        ("x", "object", None),
    ],
)
def test_fits_judges_yaml_values(value, annotation, expected) -> None:
    assert fits(value, annotation) is expected


def test_describe_reads_like_the_other_messages() -> None:
    assert describe(int | None) == "an integer or null"
    assert describe(list[str], "fid50k_full") == "a list, e.g. [fid50k_full]"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("diffusion.noise_std=inf", "diffusion.noise_std=inf is not valid; expected a finite "
                                    "number"),
        ("kimg=nan", "kimg=nan is not valid; expected a finite number"),
        ("kimg=0", "kimg=0 is not valid; expected a number in (0, "),
        ("model.g_optimizer.lr=-1", "model.g_optimizer.lr=-1 is not valid; expected a finite "
                                    "number >= 0"),
        ("model.g_optimizer.betas=[0.5]", "model.g_optimizer.betas=[0.5] is not valid; expected "
                                          "two numbers in [0, 1)"),
        ("model.d_optimizer.eps=-1e-8", "model.d_optimizer.eps=-1e-08 is not valid"),
        ("datamodule.num_workers=-1", "datamodule.num_workers=-1 is not valid; expected an "
                                      "integer in [0, 256]"),
        ("model.generator.hidden=0", "model.generator.hidden=0 is not valid; expected an "
                                     "integer in [1, 1048576]"),
        ("trainer.precision=16", "trainer.precision=16 is not valid; expected 32-true on a CPU"),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 is not valid; expected an "
                                        "integer in [1,"),
        ("diffusion.beta_end=2.0", "diffusion.beta_end=2.0 is not valid; expected a number in "
                                   "(0, 1)"),
        ("diffusion.beta_end=1e-5", "diffusion.beta_end=1e-05 is not valid; expected a number "
                                    "in [beta_start, 1)"),
        ("diffusion.t_max=3", "diffusion.t_max=3 is not valid; expected an integer >= t_min"),
        ("+paths.foo=1", "+paths.foo: no part of dgan reads 'paths.foo'"),
    ],
)
def test_values_the_target_would_refuse_are_refused_before_building(tmp_path, override,
                                                                    expected) -> None:
    assert expected in _error(tmp_path, override)


def test_an_interpolated_value_names_the_key_the_user_sets(tmp_path) -> None:
    from dgan.assembly.builder import check_run_config

    cfg = compose_train(["experiment=digits_projectedgan", "model.generator.c_dim=-1"],
                        tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        check_run_config(cfg)
    assert str(info.value).startswith("model.generator.c_dim=-1 is not valid (it sets "
                              "model.discriminator.c_dim)")


def test_augment_xflip_needs_no_plus(tmp_path) -> None:
    from dgan.assembly.builder import check_run_config

    cfg = compose_train([*TINY, "augment=ada", "augment.xflip=0"], tmp_path / "run")
    check_run_config(cfg)
    assert cfg.augment.xflip == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["foo=1"], "foo=1: unknown key; valid keys: "),
        (["diffusion.nosie_std=0.1"], "diffusion.nosie_std=0.1: unknown key; closest valid keys:"
                                      " diffusion.noise_std"),
        (["diffusion=nosuch"], "diffusion=nosuch: no diffusion config named 'nosuch'; valid "
                               "choices: "),
        (["+kimg=3"], "+kimg=3: kimg exists already, and + only adds a new key; write kimg=3"),
        (["foo=[1"], "foo=[1: cannot read this override"),
        (["-m", "seed=0,1", "kimgg=2"], "kimgg=2: unknown key; closest valid keys: kimg"),
    ],
)
def test_hydra_override_errors_are_one_line_with_the_valid_keys(overrides, expected) -> None:
    from dgan.config.compose import check_overrides

    with pytest.raises(ConfigError) as info:
        check_overrides(["experiment=gaussians25", *overrides])
    assert all(line.startswith("  ") for line in str(info.value).splitlines()[1:])
    assert one_line(str(info.value)).startswith(expected)


def test_valid_overrides_and_sweeps_pass_the_override_check() -> None:
    from dgan.config.compose import check_overrides

    check_overrides(["experiment=gaussians25", "kimg=1", "+model.generator.x=1", "-m",
                     "seed=0,1", "diffusion.noise_std=interval(0.1, 1)"])


@pytest.mark.parametrize("argv", [["diffusion.nosie_std=0.1"], ["kimg=nan"],
                                  ["hydra.run.dir=/proc/forbidden"]])
def test_cli_bad_inputs_are_one_error_line_and_exit_2(tmp_path, argv) -> None:
    res = subprocess.run([sys.executable, "-m", "dgan.train", *TINY, *argv,
                          *([] if "hydra.run.dir" in argv[0] else
                            [f"hydra.run.dir={tmp_path}/run"])],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), res.stderr[-2000:]
    assert all(line.startswith("  ") for line in lines[1:]), res.stderr[-2000:]
    assert argv[0].partition("=")[0] in lines[0]
