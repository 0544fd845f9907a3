"""Class accuracy of a conditional generator on the digits: ``cacc_digitsN``.

FID and precision/recall say whether the samples look like digits, not whether G draws the
digit it is asked for. Here N samples are drawn, N / 10 for each class (sample i is drawn for
class i mod 10, from latent i, the latents of the other metrics), and the digits classifier
behind ``fid_digits*`` (:mod:`dgan.metrics.digits_features`) names the digit it sees.
``cacc_digitsN`` is the share it names as the class asked for (1: every sample is its class,
0.1: G ignores the label), ``cacc_digitsN_classK`` the same for class K alone.

The metric needs a generator conditioned on the 10 digit labels and the digits as the
dataset; :func:`check_class_accuracy` refuses anything else in one line, before the samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from dgan.data.digits import NUM_CLASSES, DigitsDataset
from dgan.metrics.base import MetricOptions, register_metric
from dgan.metrics.digits_features import uint8_to_input
from dgan.metrics.feature_stats import (
    count_tag,
    digits_extractor,
    distributed,
    generate_uint8,
    metric_device,
    shard,
)

DEFAULT_NUM_SAMPLES = 2000
NAME = re.compile(r"cacc_digits(?P<num>\d+k?)")
COND_EXPERIMENT = "experiment=digits_stylegan2_cond"


class ClassAccuracy(Metric):
    """Per-class counts of samples and of correctly classified samples, summed over ranks.

    ``update(predicted, wanted)`` with class indices; ``compute()`` -> (overall accuracy,
    accuracy of each class).

    Args:
        num_classes: number of classes.
        kwargs: torchmetrics' ``Metric`` options.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int = NUM_CLASSES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("correct", torch.zeros(num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, wanted: torch.Tensor) -> None:
        wanted = wanted.to(self.total.device)
        hits = (predicted.to(wanted.device) == wanted).double()
        self.total += torch.bincount(wanted, minlength=self.num_classes).double()
        self.correct += torch.zeros_like(self.correct).index_add_(0, wanted, hits)

    def compute(self) -> tuple[float, list[float]]:
        per_class = (self.correct / self.total.clamp(min=1)).tolist()
        return float(self.correct.sum() / self.total.sum()), per_class


def check_class_accuracy(names: Iterable[str], G: nn.Module | None, dataset: Any = None,
                         key: str = "metrics") -> None:
    """Refuse ``cacc_digits*`` for a generator that is not conditioned on the 10 digits, or
    for reals that are not the digits, in one line (ValueError).

    Args:
        names: the metric names asked for.
        G: the generator to be scored (None: not known yet; only the dataset is checked).
        dataset: the reals (None: not known yet).
        key: the setting that named the metrics, for the message.
    """
    asked = [str(n) for n in names if NAME.fullmatch(str(n))]
    if not asked:
        return
    name = asked[0]
    if dataset is not None and not isinstance(dataset, DigitsDataset):
        raise ValueError(
            f"{key}: {name} classifies scikit-learn's digits and cannot score dataset "
            f"{getattr(dataset, 'name', type(dataset).__name__)!r}; use it on dataset=digits")
    if G is None:
        return
    net = getattr(G, "module", G)
    if getattr(net, "uint8_images", None) is not None:
        raise ValueError(f"{key}: {name} draws each class from a conditional generator; a "
                         "folder of images has no labels (give ckpt= or pkl=)")
    c_dim = int(getattr(net, "c_dim", 0) or 0)
    if c_dim != NUM_CLASSES:
        raise ValueError(
            f"{key}: {name} needs a generator conditioned on the {NUM_CLASSES} digit labels "
            f"(c_dim={NUM_CLASSES}), this one has c_dim={c_dim}; train one with "
            f"{COND_EXPERIMENT}")


def classes_of(indices: Iterable[int], num_classes: int = NUM_CLASSES) -> list[int]:
    """The class each global sample index is drawn for: i mod ``num_classes``."""
    return [int(i) % num_classes for i in indices]


@register_metric(NAME.pattern, "Class accuracy of a digits-conditional G (digits classifier).",
                 higher_is_better=ClassAccuracy.higher_is_better)
def class_accuracy_digits(opts: MetricOptions) -> dict[str, float]:
    """Share of N samples (N/10 per class) the digits classifier assigns to their class."""
    num = opts.num_samples if opts.num_samples is not None else DEFAULT_NUM_SAMPLES
    name = f"cacc_digits{count_tag(num)}"
    check_class_accuracy([name], opts.G, opts.dataset)
    if num < max(NUM_CLASSES, opts.world_size):
        raise ValueError(f"{name}: needs at least {max(NUM_CLASSES, opts.world_size)} samples "
                         f"(one per class and rank), got {num}")
    classifier = digits_extractor(opts).module.classifier
    metric = ClassAccuracy(sync_on_compute=distributed(opts)).to(metric_device(opts))
    mine = list(shard(num, opts.rank, opts.world_size))
    wanted = classes_of(mine)
    done = 0
    for images in generate_uint8(opts, mine, wanted):
        with torch.no_grad():
            logits = classifier(uint8_to_input(images.to(opts.device)))
        batch = torch.as_tensor(wanted[done : done + len(images)])
        metric.update(logits.argmax(dim=1).cpu(), batch)
        done += len(images)
    overall, per_class = metric.compute()
    metric.reset()
    return {name: overall, **{f"{name}_class{k}": acc for k, acc in enumerate(per_class)}}
