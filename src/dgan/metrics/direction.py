"""Whether a metric improves upwards or downwards, as the metric that returns it declares.

Shared by the metrics callback (best value), the Optuna sweep (direction) and the sweep report
(best value of each job), so that they always agree. Nothing is guessed from a name: a result
that no registered metric returns needs its direction said (``metrics.higher_is_better``,
``sweep_report --direction``).
"""

from __future__ import annotations


class UnknownDirection(ValueError):
    """A result no registered metric returns, and no direction given for it."""


def higher_is_better(name: str, override: bool | None = None) -> bool:
    """Whether larger values of metric result ``name`` are better.

    Args:
        name: a result as logged (``fid50k_full``, ``pr50k3_full_precision``, ``mode_kl`` ...).
        override: the answer when it is known (``metrics.higher_is_better``); None: the
            registered metric's.
    """
    if override is not None:
        return bool(override)
    from dgan.metrics.registry import result_higher_is_better

    declared = result_higher_is_better(name)
    if declared is None:
        raise UnknownDirection(
            f"{name}: no registered metric returns this result, so which way it improves is "
            "unknown; set metrics.higher_is_better=true|false (sweep_report: --direction "
            "higher|lower)")
    return declared


def optimisation_direction(metrics: list[str] | None, override: bool | None = None) -> str:
    """Optuna's direction for the headline (first) metric: ``maximize`` or ``minimize``.

    Args:
        metrics: the run's metric names (``metrics.metrics``); the first is the headline.
        override: ``metrics.higher_is_better`` (None: the registered metric's).
    """
    if not metrics:
        return "minimize"  # no metric: the run refuses an Optuna sweep before training
    return "maximize" if higher_is_better(str(metrics[0]), override) else "minimize"
