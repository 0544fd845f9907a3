"""The overfitting measures of every run: r_t, D's logits on training / held-out / generated
images and their gap, the FID floor of a subset, and diagnostics/dynamics.png."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib.axes
import pytest
import torch

from dgan.callbacks.overfitting import (
    COLUMNS,
    OverfittingMonitor,
    metric_floor,
    plot_dynamics,
    sees_clean_reals,
)
from dgan.data.digits import DigitsDataset
from dgan.files.run_files import FLOORS_FILE
from dgan.sweep_report import job_floors
from dgan.sweep_report import main as report_main
from dgan.training.losses.base import (
    CLEAN_COUNT,
    CLEAN_SIGNS,
    REAL_COUNT,
    REAL_SIGNS,
    real_sign_report,
)
from tests.conftest import fit_in_process

OVERFIT_KEYS = ("overfit/r_t", "overfit/logit_train", "overfit/logit_heldout",
                "overfit/logit_fake", "overfit/gap")
SUBSET = 40
FLOOR_METRIC = "fid_digits200_full"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _last(rows: list[dict[str, str]], key: str) -> float:
    return float([row[key] for row in rows if row.get(key)][-1])


def _monitor(run) -> OverfittingMonitor:
    return next(cb for cb in run.trainer.callbacks if isinstance(cb, OverfittingMonitor))


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    run = fit_in_process(["debug=default", "diffusion=none", f"dataset.max_size={SUBSET}",
                          "metrics=digits", f"metrics.metrics=[{FLOOR_METRIC}]",
                          "metrics.every_kimg=0"], run_dir)
    return run, run_dir


def test_plain_run_logs_every_overfit_column(plain_run) -> None:
    _, run_dir = plain_run
    rows = _csv(run_dir / "metrics.csv")
    for key in OVERFIT_KEYS:
        values = [float(row[key]) for row in rows if row.get(key)]
        assert len(values) >= 2 and all(math.isfinite(v) for v in values), key
    last = [row for row in rows if row.get("overfit/gap")][-1]
    gap = float(last["overfit/logit_train"]) - float(last["overfit/logit_heldout"])
    assert float(last["overfit/gap"]) == pytest.approx(gap, abs=1e-6)
    assert -1 <= _last(rows, "overfit/r_t") <= 1
    table = _csv(run_dir / "diagnostics" / "dynamics.csv")
    assert len(table) >= 2 and table[-1]["kimg"] == "0.04"
    assert float(table[-1]["gap"]) == pytest.approx(float(last["overfit/gap"]), rel=1e-5)
    assert math.isnan(float(table[-1]["p"]))  # no diffusion: no p
    assert math.isnan(float(table[-1]["augment_p"]))  # no augmentation: no augment p
    assert (run_dir / "diagnostics" / "dynamics.png").read_bytes().startswith(b"\x89PNG")


def test_heldout_logit_is_d_on_images_outside_the_subset(plain_run) -> None:
    run, run_dir = plain_run
    monitor = _monitor(run)
    train = run.datamodule.dataset
    held = monitor.heldout_raw
    assert len(held) == monitor.num_samples
    assert not set(held) & set(train.raw_indices.tolist())
    assert set(held) <= set(train.heldout_raw_indices.tolist())
    # The same images, read from the whole dataset by their raw index, scored by the trained D.
    full = DigitsDataset(resolution=train.resolution)
    x = torch.stack([full[i][0] for i in held])
    D = run.module.D.eval()
    with torch.no_grad():  # in the monitor's batches: D's minibatch-std layer mixes a batch
        logits = [D(chunk, torch.zeros(len(chunk), 0), None).float()
                  for chunk in x.split(monitor.batch_size)]
    direct = torch.cat(logits).mean().item()
    assert _last(_csv(run_dir / "metrics.csv"), "overfit/logit_heldout") == pytest.approx(
        direct, abs=1e-5)
    # and the training images scored are from the subset
    picked = monitor.fixed_inputs(train, run.module)["train"]
    subset = torch.stack([train[i][0] for i in range(len(train))])
    assert all((subset == img).flatten(1).all(1).any() for img in picked)


def test_floor_of_the_subset_is_logged_and_cached(plain_run) -> None:
    run, run_dir = plain_run
    floors = json.loads((run_dir / FLOORS_FILE).read_text())
    rows = _csv(run_dir / "metrics.csv")
    assert _last(rows, f"metrics/{FLOOR_METRIC}_floor") == pytest.approx(floors[FLOOR_METRIC])
    train, metrics = run.datamodule.dataset, run.metrics
    cache = Path(metrics.cache_dir)
    assert len(list((cache / "floors").glob(f"{FLOOR_METRIC}-*.json"))) == 1
    again = metric_floor(FLOOR_METRIC, train, metrics.reference_dataset, cache, None, 64)
    assert again == floors[FLOOR_METRIC] > 0
    # More of the digits lie closer to all of them: a larger subset has a lower floor.
    larger = DigitsDataset(resolution=train.resolution, max_size=1000)
    assert metric_floor(FLOOR_METRIC, larger, metrics.reference_dataset, cache, None,
                        64) < floors[FLOOR_METRIC]


def test_diffusion_run_on_all_digits_logs_r_t_without_heldout(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run = fit_in_process(["debug=default", "kimg=0.08"], run_dir)
    assert sees_clean_reals(run.module.diffusion)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"overfit/r_t", "overfit/logit_train", "overfit/logit_fake"} <= set(header)
    assert "overfit/logit_heldout" not in header and "overfit/gap" not in header
    table = _csv(run_dir / "diagnostics" / "dynamics.csv")
    assert all(0 <= float(row["p"]) <= 1 and float(row["T"]) >= 1 for row in table)
    assert any(math.isfinite(float(row["r_d"])) for row in table)
    buckets = _csv(run_dir / "diagnostics" / "dynamics_t.csv")
    assert {row["t_lo"] for row in buckets} > {"0"}  # diffused buckets beside t = 0
    assert (run_dir / "diagnostics" / "dynamics.png").read_bytes().startswith(b"\x89PNG")
    assert not (run_dir / "diagnostics" / "p_T.png").exists()


def test_clean_signs_count_only_the_reals_at_t_zero() -> None:
    logits = torch.tensor([[1.0], [-2.0], [3.0], [0.5]])
    report = real_sign_report(logits, torch.tensor([True, True, False, True]))
    assert report[REAL_SIGNS] == 2 and report[REAL_COUNT] == 4
    assert report[CLEAN_SIGNS] == 1 and report[CLEAN_COUNT] == 3
    plain = real_sign_report(logits, True)
    assert plain[CLEAN_SIGNS] == plain[REAL_SIGNS] and plain[CLEAN_COUNT] == 4


def test_holdout_split_is_disjoint_and_keeps_the_subset() -> None:
    full = DigitsDataset(resolution=8, holdout=100)
    assert len(full) == 1797 - 100 and full.heldout_size == 100
    assert not set(full.raw_indices.tolist()) & set(full.heldout_raw_indices.tolist())
    subset = DigitsDataset(resolution=8, max_size=200)
    both = DigitsDataset(resolution=8, max_size=200, holdout=100)
    assert (both.raw_indices == subset.raw_indices).all() and both.heldout_size == 100
    assert subset.heldout_size == 1797 - 200
    everything = DigitsDataset(resolution=8)
    k = 7
    x, _ = subset.heldout_item(k)
    assert torch.equal(x, everything[int(subset.heldout_raw_indices[k])][0])
    with pytest.raises(ValueError, match="holdout=1797"):
        DigitsDataset(resolution=8, holdout=1797)


def test_curves_draw_the_floor(tmp_path: Path, monkeypatch) -> None:
    sweep = tmp_path / "sweep"
    for num in range(2):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={num}\n")
        (job / "metrics.jsonl").write_text(
            "".join(json.dumps({"kimg": k, "fid": 30.0 - k}) + "\n" for k in (4, 8)))
        (job / FLOORS_FILE).write_text(json.dumps({"fid": 9.5}))
    drawn: list[float] = []
    original = matplotlib.axes.Axes.axhline

    def spy(self, y=0, *args, **kwargs):
        drawn.append(y)
        return original(self, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", spy)
    assert report_main([str(sweep), "--curves"]) == 0
    assert job_floors([], "fid") == []
    assert drawn.count(9.5) == 2  # both panels


def test_picture_without_diffusion_or_heldout(tmp_path: Path) -> None:
    history = [[k, 0.5, 1.0, math.nan, -1.0, math.nan, math.nan, math.nan, math.nan, math.nan,
                math.nan] for k in (4.0, 8.0)]
    t_history = [[4.0, 0, 0, 1.0], [8.0, 0, 0, 1.2]]
    path = plot_dynamics(history, t_history, tmp_path / "d.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_r_t_scores_the_clean_reals_itself_when_d_never_sees_them() -> None:
    from types import SimpleNamespace

    from dgan.diffusion.process import Diffusion

    seen_t: list[torch.Tensor] = []

    def D(x, c, t):
        seen_t.append(t)
        return x.flatten(1).mean(1, keepdim=True)

    trainer = SimpleNamespace(strategy=SimpleNamespace(reduce=lambda x, reduce_op: x))
    real = torch.stack([torch.full((1, 4, 4), v) for v in (0.5, -0.2, 0.3, 0.9)])
    batch = (real, torch.zeros(4, 0))
    outputs = {CLEAN_SIGNS: torch.tensor(-4.0), CLEAN_COUNT: torch.tensor(4.0)}
    # Every t >= 1: the loss's clean count would be 0, so D scores the batch at t = 0 itself.
    noisy = SimpleNamespace(D=D, diffusion=Diffusion(t_sampling="per_sample"))
    monitor = OverfittingMonitor(run_dir=".")
    monitor._accumulate(noisy, outputs, batch)
    assert monitor._take_r_t(trainer, torch.device("cpu")) == pytest.approx(0.5)
    assert torch.equal(seen_t[-1], torch.zeros(4, dtype=torch.long))
    # Half the pool at t = 0: the loss's own count of the clean reals is used.
    pooled = SimpleNamespace(D=D, diffusion=Diffusion())
    monitor = OverfittingMonitor(run_dir=".")
    monitor._accumulate(pooled, outputs, batch)
    assert monitor._take_r_t(trainer, torch.device("cpu")) == -1.0 and len(seen_t) == 1


def test_projected_feature_diffusion_scores_clean_features_itself() -> None:
    from dgan.callbacks.overfitting import clean_t
    from dgan.diffusion.feature_noise import FeatureDiffusion
    from dgan.diffusion.process import Diffusion

    x = torch.zeros(3, 1, 4, 4)
    # ProjectedGAN's D takes the feature diffusion as its third argument: None is no noise.
    assert clean_t(FeatureDiffusion(), x) is None and not sees_clean_reals(FeatureDiffusion())
    assert torch.equal(clean_t(Diffusion(), x), torch.zeros(3, dtype=torch.long))
    assert clean_t(None, x) is None and sees_clean_reals(None)


def test_a_checkpoint_with_fewer_columns_resumes_with_the_new_ones_unknown(tmp_path: Path
                                                                           ) -> None:
    monitor = OverfittingMonitor(tmp_path)
    state = monitor.state_dict()
    old_row = [4.0, 0.5, 1.0, 0.8, -1.0, 0.2, 0.1, 12.0, 0.6, 0.6]  # before augment_p
    state["history"] = [old_row]
    monitor.load_state_dict(state)
    assert len(monitor.history[0]) == len(COLUMNS)
    assert monitor.history[0][:len(old_row)] == old_row and math.isnan(monitor.history[0][-1])
