"""The limited-data protocol: a ``dataset.max_size`` run is scored against the whole dataset."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dgan.assembly.builder import build_run
from dgan.core.errors import ConfigError
from dgan.data.digits import DigitsDataset
from dgan.evaluate import EvaluateOptions, dataset_config

ALL_DIGITS = 1797
SUBSET = 50


def test_digits_subset_is_scored_against_all_digits(compose_cfg):
    run = build_run(compose_cfg("experiment=digits_stylegan2", f"dataset.max_size={SUBSET}"))
    assert len(run.datamodule.dataset) == SUBSET
    assert run.metrics is not None and run.metrics.reference == "full"
    assert len(run.metrics.reference_dataset) == ALL_DIGITS


def test_reference_train_keeps_the_subset(compose_cfg):
    run = build_run(compose_cfg("experiment=digits_stylegan2", f"dataset.max_size={SUBSET}",
                                "metrics.reference=train"))
    assert run.metrics.reference_dataset is run.datamodule.dataset


def test_unknown_reference_names_key_and_choices(compose_cfg):
    with pytest.raises(ConfigError) as err:
        build_run(compose_cfg("experiment=digits_stylegan2", "metrics.reference=all"))
    text = str(err.value)
    assert "metrics" in text and "'all'" in text and "train, full" in text
    assert "\n" not in text


def test_evaluation_uses_the_reference_dataset(compose_cfg, monkeypatch):
    """MetricsCallback.evaluate hands the metric the full set, not the training subset."""
    import dgan.callbacks.metrics as metrics_module

    run = build_run(compose_cfg("experiment=digits_stylegan2", f"dataset.max_size={SUBSET}",
                                "metrics.save_best=false"))
    seen = []

    def fake_metric(name, opts):
        seen.append(len(opts.dataset))
        return {name: 1.0}

    monkeypatch.setattr(metrics_module, "compute_metric", fake_metric)
    subset = DigitsDataset(max_size=SUBSET)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(dataset=subset), global_rank=0,
                              world_size=1, is_global_zero=False)
    module = SimpleNamespace(G_ema=torch.nn.Identity(), device=torch.device("cpu"), kimg=0.0)
    run.metrics.evaluate(trainer, module)
    assert seen == [ALL_DIGITS] * len(run.metrics.metrics)


def test_evaluate_command_drops_the_subset_of_a_full_reference_run():
    run_config = {"dataset": {"_target_": "dgan.data.digits.DigitsDataset", "max_size": SUBSET},
                  "metrics": {"reference": "full"}}
    node = dataset_config(EvaluateOptions(ckpt="x.ckpt"), run_config, {})
    assert node["max_size"] is None
    run_config["metrics"]["reference"] = "train"
    assert dataset_config(EvaluateOptions(ckpt="x.ckpt"), run_config, {})["max_size"] == SUBSET
