"""What D's head keeps of the class and of t: the ``separate`` encoding and the cosine report."""

from __future__ import annotations

import pytest
import torch

from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError
from dgan.networks.conditioning import (
    CONDITIONING_MODES,
    PROBE_TIMESTEPS,
    TimestepConditioning,
    conditioning_cosines,
)
from dgan.networks.stylegan2 import Discriminator

# The acceptance margin: a class-keeping head may not pull two classes together by more than
# this at any t compared with clean images.
CLASS_MARGIN = 0.05
# Above this cosine two conditioning vectors are, for D, the same direction.
COLLAPSED = 0.98
T_MAX = 1000
QUIET_CALLBACKS = ("samples", "progress", "throughput", "toy_figure", "overfitting", "checkpoint")


def _head(mode: str, c_dim: int = 10, seed: int = 0, **kwargs) -> TimestepConditioning:
    torch.manual_seed(seed)
    return TimestepConditioning(mode=mode, c_dim=c_dim, cmap_dim=64, t_max=T_MAX, num_layers=8,
                                lr_multiplier=0.01, **kwargs)


def class_cosines(rows) -> dict[int, float]:
    return {a: cos for kind, a, _, cos in rows if kind == "class"}


def t_cosines(rows) -> dict[tuple[int, int], float]:
    return {(a, b): cos for kind, a, b, cos in rows if kind == "t"}


def test_cosines_are_those_of_the_conditioning_vectors() -> None:
    head = _head("raw")
    rows = conditioning_cosines(head)
    labels = torch.eye(10)
    at_100 = head.conditioning(labels, torch.full((10,), 100), 10)
    unit = torch.nn.functional.normalize(at_100.double(), dim=1)
    sims = unit @ unit.T
    expected = float((sims.sum() - 10) / 90)
    assert class_cosines(rows)[100] == pytest.approx(expected, abs=1e-9)
    # The head's logits are the features projected on exactly these vectors.
    features = torch.randn(10, head.in_features)
    logits = head(features, labels, torch.full((10,), 100))
    torch.testing.assert_close(logits, (features * at_100).sum(1, keepdim=True) / 64**0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separate_keeps_classes_apart_at_every_t_while_t_differs(seed: int) -> None:
    rows = conditioning_cosines(_head("separate", seed=seed))
    classes = class_cosines(rows)
    assert sorted(classes) == [0, 10, 100, T_MAX]
    for t in (10, 100, T_MAX):
        assert classes[t] <= classes[0] + CLASS_MARGIN, (t, classes)
    assert max(classes.values()) < COLLAPSED
    ts = t_cosines(rows)
    assert sorted(ts) == [(10, 100), (10, 500), (100, 500)]
    assert all(cos < COLLAPSED for cos in ts.values()), ts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raw_collapses_the_classes_under_the_chain(seed: int) -> None:
    rows = conditioning_cosines(_head("raw", seed=seed))
    classes = class_cosines(rows)
    for t in (100, T_MAX):
        assert classes[t] > COLLAPSED > classes[0] + CLASS_MARGIN, classes
    assert classes[10] > classes[0] + CLASS_MARGIN
    # ... and hardly tells one t > 0 from another.
    assert min(t_cosines(rows).values()) > COLLAPSED


@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_report_rows_for_each_encoding(mode: str) -> None:
    conditional = conditioning_cosines(_head(mode))
    assert len(class_cosines(conditional)) == 4
    unconditional = conditioning_cosines(_head(mode, c_dim=0))
    assert not class_cosines(unconditional)
    if mode == "none":
        # D ignores t: nothing to compare over t, and the classes look the same at every t.
        assert not t_cosines(conditional) and unconditional == []
        assert len(set(class_cosines(conditional).values())) == 1
        return
    n_pairs = len(PROBE_TIMESTEPS) * (len(PROBE_TIMESTEPS) - 1) // 2
    assert len(t_cosines(conditional)) == len(t_cosines(unconditional)) == n_pairs
    if mode in ("sinusoidal", "separate"):
        # These two encodings tell t apart from initialisation.
        assert min(t_cosines(unconditional).values()) < COLLAPSED


def test_separate_label_half_ignores_t_and_t_half_ignores_the_label() -> None:
    head = _head("separate")
    labels = torch.eye(10)[[3, 3, 5]]
    t = torch.tensor([10, 700, 10])
    v = head.conditioning(labels, t, 3)
    half = head.cmap_dim // 2
    torch.testing.assert_close(v[0, :half], v[1, :half])  # same class, other t
    torch.testing.assert_close(v[0, half:], v[2, half:])  # same t, other class
    assert not torch.allclose(v[0, half:], v[1, half:])
    assert not torch.allclose(v[0, :half], v[2, :half])


def test_separate_in_the_stylegan2_discriminator() -> None:
    torch.manual_seed(0)
    D = Discriminator(c_dim=10, img_resolution=16, img_channels=1, channel_base=128,
                      channel_max=16, num_fp16_res=0, mbstd_group_size=2,
                      t_conditioning="separate", t_max=T_MAX, mapping_layers=2)
    img = torch.randn(2, 1, 16, 16)
    c = torch.eye(10)[[1, 1]]
    clean = D(img, c, None)
    torch.testing.assert_close(clean, D(img, c, torch.zeros(2, dtype=torch.long)))
    assert not torch.allclose(D(img, c, torch.tensor([10, 10])),
                              D(img, c, torch.tensor([500, 500])))
    assert not torch.allclose(D(img, c, torch.tensor([500, 500])),
                              D(img, torch.eye(10)[[2, 2]], torch.tensor([500, 500])))
    with pytest.raises(ValueError, match="cmap_dim >= 2"):
        TimestepConditioning(mode="separate", c_dim=10, cmap_dim=1)


def test_misspelt_encoding_is_refused_naming_separate(compose_cfg) -> None:
    cfg = compose_cfg("experiment=digits_stylegan2_cond", "debug=default",
                      "model.discriminator.t_conditioning=seperate")
    with pytest.raises(ConfigError, match=r"t_conditioning.*'seperate'.*separate") as info:
        build_run(cfg)
    assert "\n" not in str(info.value)


def _train_conditional(tmp_path, mode: str):
    """A tiny conditional digits run under ``mode``; D's head at initialisation and the run."""
    import copy

    from dgan.config.debug import apply_debug

    from .conftest import compose_train

    # Only the diagnostics among the callbacks: the others cost time and test nothing here.
    quiet = [f"callbacks.{name}=null" for name in QUIET_CALLBACKS]
    cfg = compose_train(["experiment=digits_stylegan2_cond", "debug=default", "kimg=0.04",
                         "callbacks.diagnostics.every_kimg=0.02",
                         "callbacks.diagnostics.num_samples=8",
                         f"model.discriminator.t_conditioning={mode}", *quiet], tmp_path / mode)
    apply_debug(cfg)
    run = build_run(cfg)
    initial = copy.deepcopy(run.module.D.head)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return initial, run


def _last_rows(path) -> list[tuple[str, int, int, float]]:
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    last = max(float(r["kimg"]) for r in rows)
    return [(r["kind"], int(r["t_a"]), int(r["t_b"]), float(r["cosine"]))
            for r in rows if float(r["kimg"]) == last]


@pytest.mark.parametrize("mode", ["separate", "raw"])
def test_class_keeping_after_a_short_training_run(tmp_path, mode: str) -> None:
    initial, run = _train_conditional(tmp_path, mode)
    trained = run.module.D.head
    t_max = trained.t_max
    moved = [not torch.equal(a, b) for a, b in zip(initial.parameters(), trained.parameters(),
                                                     strict=True)]
    assert all(moved)  # training reached every parameter of the head
    written = _last_rows(run.run_dir / "diagnostics" / "conditioning.csv")
    for got, want in zip(written, conditioning_cosines(trained), strict=True):
        assert got[:3] == want[:3] and got[3] == pytest.approx(want[3], abs=1e-9)
    for head in (initial, trained):
        rows = conditioning_cosines(head)
        classes = class_cosines(rows)
        assert sorted(classes) == [0, 10, 100, t_max]
        if mode == "separate":
            for t in (10, 100, t_max):
                assert classes[t] <= classes[0] + CLASS_MARGIN, classes
            assert max(t_cosines(rows).values()) < COLLAPSED
        else:  # the reference's encoding: the classes fold together under the chain
            for t in (100, t_max):
                assert classes[t] > COLLAPSED > classes[0] + CLASS_MARGIN, classes


def test_only_the_conditional_digits_preset_leaves_the_reference_encoding(compose_cfg) -> None:
    from omegaconf import OmegaConf

    from .conftest import CONF

    encodings = {}
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        cfg = compose_cfg(f"experiment={path.stem}")
        encodings[path.stem] = OmegaConf.select(cfg, "model.discriminator.t_conditioning")
    assert encodings.pop("digits_stylegan2_cond") == "separate"
    # the paper's presets and every other one: the reference's raw, or no t (no diffusion)
    assert set(encodings.values()) <= {"raw", "none", None}, encodings
    assert "raw" in encodings.values()
