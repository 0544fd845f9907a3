"""``dgan.generate`` and ``dgan.evaluate`` on a checkpoint of a short digits training run.

One tiny digits_stylegan2 run (module fixture) gives real checkpoints (last.ckpt, best.ckpt),
metrics.jsonl and metrics_summary.json; the commands are run on them as a subprocess where
the command line itself is under test, and through ``main(argv)`` otherwise (the same code
behind ``python -m``, without paying the interpreter start-up again).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan import evaluate, generate
from dgan.assembly.builder import build_run, plain_config
from dgan.config.cli_args import parse_key_values
from dgan.core.errors import ConfigError
from dgan.core.messages import one_line
from dgan.files.run_files import read_metrics
from dgan.inference.loading import build_generator, load_generator

from .conftest import REPO, compose_train

TINY_DIGITS = [
    "experiment=digits_stylegan2",
    "kimg=0.1",
    "model.batch_size=8",
    # 32 px (the default job trains at 16): the images= test compares with dataset=digits,
    # whose resolution without a model is 32.
    "model.generator.img_resolution=32",
    "model.generator.channel_base=1024",
    "model.generator.channel_max=64",
    "metrics.metrics=[fid_digits200_full]",
    "metrics.every_kimg=0.05",
    "callbacks.samples.every_kimg=0",
    "callbacks.checkpoint.every_kimg=0",
    "callbacks.progress.refresh_rate=0",
]
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
RESOLUTION = 32


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run dir of a 13-step digits run evaluated twice (kimg 0.05 and at the end)."""
    run_dir = tmp_path_factory.mktemp("digits_run")
    run = build_run(compose_train(TINY_DIGITS, run_dir))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return run_dir


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# Training: final and best, best.ckpt
# --------------------------------------------------------------------------------------------


def test_training_reports_final_and_best_and_keeps_best_checkpoint(digits_run: Path) -> None:
    records = read_metrics(digits_run)
    assert len(records) == 2  # kimg 0.05 and the end
    summary = json.loads((digits_run / "metrics_summary.json").read_text())
    final, best = summary["final"], summary["best"]
    assert final["kimg"] == pytest.approx(records[-1]["kimg"], abs=1e-3)
    assert final["fid_digits200_full"] == pytest.approx(records[-1]["fid_digits200_full"])
    best_record = min(records, key=lambda r: r["fid_digits200_full"])
    assert best["fid_digits200_full"] == pytest.approx(best_record["fid_digits200_full"])
    assert best["kimg"] == pytest.approx(best_record["kimg"], abs=1e-3)
    # best.ckpt is the checkpoint of that evaluation, loadable like any other.
    loaded = load_generator(best["checkpoint"])
    assert loaded.kimg == pytest.approx(best["kimg"], abs=1e-3)
    assert Path(best["checkpoint"]) == digits_run / "checkpoints" / "best.ckpt"


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------


def test_generate_cli_writes_seed_images_and_grid(digits_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "a"
    res = _cli("dgan.generate", f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}",
               "seeds=0-2,5", "trunc=1.0", f"outdir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0005.png"]
    for name in names[1:]:
        image = Image.open(out / name)
        assert image.size == (RESOLUTION, RESOLUTION) and image.mode == "L"
    assert Image.open(out / "grid.png").size == (2 * RESOLUTION, 2 * RESOLUTION)  # 4 in 2x2
    pixels = [np.asarray(Image.open(out / n)) for n in names[1:]]
    assert not np.array_equal(pixels[0], pixels[1])  # different seeds, different images

    # The same seed gives the same image, generated alone and in another process.
    again = tmp_path / "b"
    assert generate.main([f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}", "seeds=5",
                          f"outdir={again}", "grid=false"]) == 0
    assert sorted(p.name for p in again.iterdir()) == ["seed0005.png"]
    assert (again / "seed0005.png").read_bytes() == (out / "seed0005.png").read_bytes()
    # Truncation towards w_avg changes the image.
    trunc = tmp_path / "c"
    assert generate.main([f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}", "seeds=5",
                          f"outdir={trunc}", "trunc=0.5"]) == 0
    assert (trunc / "seed0005.png").read_bytes() != (out / "seed0005.png").read_bytes()


def test_parse_seeds() -> None:
    assert generate.parse_seeds("0-3") == [0, 1, 2, 3]
    assert generate.parse_seeds("1,5,9") == [1, 5, 9]
    assert generate.parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert generate.parse_seeds(7) == [7]
    assert generate.parse_seeds([2, 4]) == [2, 4]
    assert generate.parse_seeds("3,1-3") == [3, 1, 2]  # repeats dropped, order kept
    for bad in ("5-2", "a", "1;2", "-3", f"0-{2**32}"):
        with pytest.raises(ConfigError, match="seeds="):
            generate.parse_seeds(bad)


def test_key_value_arguments() -> None:
    opts, extra = parse_key_values(
        ["metrics=[a,b]", "seed=3", "dataset.path=/x.zip", "trunc=0.5"],
        evaluate.EvaluateOptions, passthrough=("dataset",))
    assert opts.metrics == ["a", "b"] and opts.seed == 3 and opts.trunc == 0.5
    assert extra == {"dataset": {"path": "/x.zip"}}
    assert parse_key_values(["metrics=a,b"], evaluate.EvaluateOptions)[0].metrics == ["a", "b"]
    with pytest.raises(ConfigError, match="nope: unknown key; valid keys: ckpt, pkl, images"):
        parse_key_values(["nope=1"], evaluate.EvaluateOptions)
    with pytest.raises(ConfigError, match="not key=value"):
        parse_key_values(["ckpt"], evaluate.EvaluateOptions)
    with pytest.raises(ConfigError, match="seed=1.5 is not valid; expected an integer"):
        parse_key_values(["seed=1.5"], evaluate.EvaluateOptions)


def _synthetic_checkpoint(config: dict, path: Path) -> Path:
    """A checkpoint in dgan's format holding a freshly initialised G_ema of ``config``."""
    torch.manual_seed(0)
    G = build_generator(config)
    state = {f"G_ema.{k}": v for k, v in G.state_dict().items()}
    torch.save({"state_dict": state, "dgan": {"cur_nimg": 0, "cur_step": 0, "config": config}},
               path)
    return path


def test_generate_class_labels_of_a_conditional_model(digits_run: Path, tmp_path: Path,
                                                      capsys) -> None:
    config = torch.load(digits_run / "checkpoints" / "last.ckpt",
                        weights_only=True)["dgan"]["config"]
    config["model"]["generator"]["c_dim"] = 10
    ckpt = _synthetic_checkpoint(config, tmp_path / "cond.ckpt")
    base = [f"ckpt={ckpt}", "seeds=1"]
    assert generate.main([*base, f"outdir={tmp_path / 'c3'}", "class_idx=3"]) == 0
    assert generate.main([*base, f"outdir={tmp_path / 'c4'}", "class_idx=4"]) == 0
    assert ((tmp_path / "c3" / "seed0001.png").read_bytes()
            != (tmp_path / "c4" / "seed0001.png").read_bytes())
    capsys.readouterr()
    assert generate.main([*base, f"outdir={tmp_path / 'x'}"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: class_idx is required: this model is conditional with 10 classes; "
        "give class_idx=0..9"
    ]
    assert generate.main([*base, f"outdir={tmp_path / 'x'}", "class_idx=10"]) == 2
    assert "class_idx=10 is out of range; valid: 0..9" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written on bad input
    # And the unconditional run refuses a class.
    assert generate.main([f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}",
                          f"outdir={tmp_path / 'x'}", "class_idx=1"]) == 2
    assert "unconditional" in capsys.readouterr().err


def test_generate_toy_model_writes_scatter_and_points(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=gaussians25", "model.generator.hidden=32"],
                        tmp_path / "toy_run")
    ckpt = _synthetic_checkpoint(plain_config(cfg), tmp_path / "toy.ckpt")
    out = tmp_path / "toy"
    assert generate.main([f"ckpt={ckpt}", "seeds=0-99", f"outdir={out}"]) == 0
    # A checkpoint of G_ema alone has no D to draw: no toy figure, and a note instead.
    assert sorted(p.name for p in out.iterdir()) == ["points.csv", "scatter.png"]
    rows = (out / "points.csv").read_text().splitlines()
    assert rows[0] == "seed,x0,x1" and len(rows) == 101 and rows[1].startswith("0,")
    assert Image.open(out / "scatter.png").size[0] > 100
    assert generate.main([f"ckpt={ckpt}", "seeds=0", f"outdir={out}", "trunc=0.5"]) == 2


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def test_evaluate_cli_on_checkpoint_writes_json_and_table(digits_run: Path,
                                                          tmp_path: Path) -> None:
    res = _cli("dgan.evaluate", f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}",
               "metrics=[fid_digits200_full,pr_digits2003_full]", f"outdir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads((tmp_path / "metrics-last.json").read_text())
    results = record["results"]
    assert set(results) == {"fid_digits200_full", "pr_digits2003_full_precision",
                            "pr_digits2003_full_recall"}
    assert math.isfinite(results["fid_digits200_full"]) and results["fid_digits200_full"] > 0
    assert 0 <= results["pr_digits2003_full_precision"] <= 1
    assert record["source"]["kimg"] == pytest.approx(read_metrics(digits_run)[-1]["kimg"],
                                                     abs=1e-3)
    assert record["dataset"]["name"] == "digits" and record["dataset"]["size"] == 1797
    assert record["options"]["seed"] == 123  # the run's metrics.seed, as in metrics.jsonl
    lines = res.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    table = {line.split()[0]: float(line.split()[1]) for line in lines[header + 2: header + 5]}
    assert table == pytest.approx(results, rel=1e-5)


def _write_pngs(images: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[0]).save(folder / f"img{i:05d}.png")
    return folder


def test_evaluate_image_folders(digits_run: Path, tmp_path: Path) -> None:
    from dgan.data.digits import DigitsDataset

    count = 200
    reals = DigitsDataset(resolution=RESOLUTION)
    real_dir = _write_pngs(np.stack([reals.get_uint8(i).numpy() for i in range(count)]),
                           tmp_path / "reals")
    fake_dir = tmp_path / "fakes"
    assert generate.main([f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}",
                          f"seeds=0-{count - 1}", f"outdir={fake_dir}", "grid=false"]) == 0
    common = ["dataset=digits", f"metrics=[fid_digits{count}_full]",
              f"cache_dir={digits_run / 'cache'}", f"outdir={tmp_path}"]
    real = evaluate.run(*parse_key_values([f"images={real_dir}", *common],
                                          evaluate.EvaluateOptions))
    fake = evaluate.run(*parse_key_values([f"images={fake_dir}", *common],
                                          evaluate.EvaluateOptions))
    # Real digits sit far closer to the digits than a 13-step generator's output.
    key = f"fid_digits{count}_full"
    assert real.results[key] < fake.results[key] / 4
    assert real.record["source"] == {"images": str(real_dir), "num_images": count}
    assert json.loads(real.path.read_text())["results"] == real.results
    assert real.path == tmp_path / "metrics-reals.json"


def test_evaluate_bad_input_is_one_line(digits_run: Path, tmp_path: Path, capsys) -> None:
    assert evaluate.main([f"ckpt={tmp_path / 'missing.ckpt'}"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        f"error: ckpt={tmp_path / 'missing.ckpt'}: no such checkpoint file; give a .ckpt "
        "written by dgan.train, e.g. RUN_DIR/checkpoints/last.ckpt or best.ckpt"
    ]
    ckpt = f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}"
    cases = [
        ([ckpt, "metrics=[fid_nope]"], "error: metrics: unknown metric 'fid_nope'; valid: "),
        ([ckpt, "dataset.nope=1"], "error: dataset.nope: unknown key for "),
        ([ckpt, "dataset=nope"], "error: dataset='nope' is not a dataset config; choose one of"),
        ([f"images={tmp_path}"], "error: metrics is required with images="),
        ([f"images={tmp_path}", "metrics=[fid_digits10_full]"], "error: dataset is required"),
        ([ckpt, f"images={tmp_path}"], "error: give exactly one of ckpt="),
        ([f"images={tmp_path / 'none'}"], "error: images="),
    ]
    for argv, start in cases:
        assert evaluate.main(argv) == 2, argv
        lines = _error_lines(capsys.readouterr().err)
        # One error line; a long list of what is valid on the indented lines after it.
        assert all(line.startswith("  ") for line in lines[1:]), (argv, lines)
        assert one_line("\n".join(lines)).startswith(start), (argv, lines)
    assert "fid<N>k_full" in evaluate.metric_name_forms()
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert evaluate.main([f"ckpt={tmp_path / 'junk.ckpt'}"]) == 2
    assert "is a text file, not a checkpoint" in capsys.readouterr().err


def test_missing_weights_fail_at_start(digits_run: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    # evaluate: before any data is read or feature extracted.
    assert evaluate.main([f"ckpt={digits_run / 'checkpoints' / 'last.ckpt'}",
                          "metrics=[fid50k_full]", f"weights_dir={empty}"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and INCEPTION_FILE in lines[0]
    assert "python -m dgan.metrics.fetch_weights DIR" in lines[0]
    # training: when the run is built, before fit (no checkpoint, nothing trained).
    cfg = compose_train(["experiment=gaussians25", "metrics=fid50k",
                         f"metrics.weights_dir={empty}"], tmp_path / "run")
    with pytest.raises(ConfigError, match=f"metrics: .*'{INCEPTION_FILE}'"):
        build_run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
