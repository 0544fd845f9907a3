"""Table and plot of a multirun: ``python -m dgan.sweep_report DIR``.

``DIR`` is a Hydra multirun directory (``multirun/RUN_NAME/DATE_TIME``): every folder under it
with a ``.hydra/overrides.yaml`` is one job (several DIRs are reported as one multirun, their
outputs written into the first: an arm run for one comparison reused in another), and its
``metrics.jsonl`` (written by the metrics callback) holds its evaluations. The report has one
row per job: the swept values, the final value of the headline metric, and its best value with
the kimg where it was reached. The plot has one panel per swept key, the headline metric against
the key's values.

Flags:
    DIR [DIR ...]       the multirun directory (several: their jobs together, outputs in the
                        first).
    --out OUT           the directory for every file of the report instead of the first DIR.
    --metric NAME       metric to report (default: the headline, the first metric a job logged).
    --keys K1,K2        swept keys to report (default: the override keys whose values differ
                        between jobs; with one job, the sweeper's params).
    --direction D       auto | higher | lower: which way the metric improves, for "best"
                        (auto: metrics.higher_is_better of the job config, else from the name).
    --csv PATH          where to write the table (default: DIR/sweep_report.csv).
    --png PATH          where to write the plot (default: DIR/sweep_report.png).
    --group-by K1,K2    also aggregate the jobs that share these keys' values (e.g. the seeds
                        of each setting): mean, standard deviation and n of the final value of
                        every metric, as DIR/sweep_groups.csv, sweep_groups.md (a Markdown
                        table) and sweep_groups.png (error bars: one standard deviation).
    --metrics M1,M2     the metrics to aggregate (default: every metric of the final records).
    --compare KEY=BASE  each --group-by group against the group that differs from it only in
                        KEY, which has KEY=BASE: per metric (--metrics; default the headline),
                        the mean over shared seeds of the per-seed difference of final values
                        against 2 pooled standard deviations, as DIR/sweep_compare.csv.
    --curves            time to quality: the metric of each group (--group-by; all jobs as one
                        group without it) against kimg and against training wall time
                        (``train_seconds`` of metrics.jsonl), mean and one standard deviation at
                        each evaluation, as DIR/sweep_curves.csv and sweep_curves.png.
    --overfit           per job: did the FID rise from its best and D's logit gap grow, was the
                        chain on; each arm with the chain against its plain arm
                        (DIR/sweep_overfit.csv).
    --by-t              D's mean real and fake logits per bucket of t, per group, over the first
                        and the second half of the runs (DIR/sweep_by_t.csv, sweep_by_t.png).

Every flag may also be written ``key=value`` (``group_by=diffusion``), as the other commands
take them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dgan.config.cli_args import dashed
from dgan.core.messages import listed
from dgan.files.run_files import (
    D_BY_T_TABLE,
    DIAGNOSTICS_DIR,
    DYNAMICS_TABLE,
    FLOORS_FILE,
    TRAIN_SECONDS,
    WHEN_KEYS,
    read_metrics,
)
from dgan.metrics.direction import UnknownDirection, higher_is_better
from dgan.tracking import logits_by_t, overfit_criteria, paired_comparison

CSV_NAME = "sweep_report.csv"
PNG_NAME = "sweep_report.png"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
CONFIG_FILE = Path(".hydra") / "config.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
# A replicate, not a setting: no panel of its own in the plot.
SEED_KEY = "seed"
# How a run was started or stops, not what it ran: a job continued with resume=auto is not a
# setting of its own.
RUN_CONTROL = ("resume", "overwrite", "callbacks.preemption.exit_code")
MULTIRUN_FILE = "multirun.yaml"
SHOWN_YAML_ERROR = 120  # characters of a YAML parser's complaint kept in the one-line error
# A numeric axis spanning at least this ratio (positive values) is drawn on a log scale.
LOG_AXIS_RATIO = 10.0
PANEL_INCHES = (4.0, 3.2)
# The curves' legend, under the panels: entries per row, and the height of a row.
LEGEND_COLUMNS = 2
LEGEND_ROW_INCHES = 0.25
# Up to this many distinct values (a grid) are each labelled on the x axis.
MAX_VALUE_TICKS = 8
STAT_COLUMNS = ("metric", "final", "final_kimg", "best", "best_kimg", "evaluations")
GROUPS_CSV = "sweep_groups.csv"
GROUPS_MD = "sweep_groups.md"
GROUPS_PNG = "sweep_groups.png"
CURVES_CSV = "sweep_curves.csv"
CURVES_PNG = "sweep_curves.png"
OVERFIT_CSV = "sweep_overfit.csv"
BY_T_CSV = "sweep_by_t.csv"
BY_T_PNG = "sweep_by_t.png"
COMPARE_CSV = "sweep_compare.csv"
COMPARE_COLUMNS = ("against", "metric", "seeds", "arm_mean", "base_mean", "difference",
                   "pooled_sd", "bound", "reading")
DIFFUSION_KEY = "diffusion"
CURVE_COLUMNS = ("group", "evaluation", "n", "kimg_mean", "seconds_mean", "seconds_std",
                 "value_mean", "value_std")
# Significant digits of the Markdown table.
MD_DIGITS = 4


class ReportError(ValueError):
    """A multirun directory that cannot be reported on; the message says why."""


@dataclasses.dataclass
class Job:
    """One job of a multirun.

    Args:
        name: its directory relative to the multirun directory (to their common parent when
            several are reported together).
        path: its directory.
        overrides: its command-line overrides, key -> value (parsed as YAML scalars).
        records: its evaluations from metrics.jsonl, oldest first.
        higher_is_better: ``metrics.higher_is_better`` of its config (None: not given).
        settings: what the job ran with where no override says: its config's values
            (``dataset.max_size``) and its config-group choices (``diffusion``).
    """

    name: str
    path: Path
    overrides: dict[str, Any]
    records: list[dict[str, Any]]
    higher_is_better: bool | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def value(self, key: str) -> Any:
        """The job's value of ``key``: its override, else what its config had (blank: none)."""
        return self.overrides.get(key, self.settings.get(key, ""))

    def headline(self) -> str | None:
        """The first metric this job logged (what ``dgan.train`` returns)."""
        for record in self.records:
            for key in record:
                if key not in WHEN_KEYS:
                    return key
        return None


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` of a Hydra override (``+``/``++``/``~`` prefixes dropped), value parsed."""
    key, _, value = text.partition("=")
    key = key.lstrip("+~")
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        parsed = value
    return key, parsed if isinstance(parsed, (int, float, str, bool)) or parsed is None else value


def _natural_key(name: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


def read_yaml(path: Path) -> Any:
    """A job's saved YAML file as plain data; a file that is not (a tag naming a Python
    object, a syntax error) stops the report in one line naming it, nothing in it run."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        problem = " ".join(str(getattr(err, "problem", None) or err).split())[:SHOWN_YAML_ERROR]
        raise ReportError(f"{path}: not a plain YAML file of a run ({problem}); nothing in it "
                          "was run") from None


SweepDirs = Path | Sequence[Path]


def sweep_dirs(sweep_dir: SweepDirs) -> list[Path]:
    """The multirun directories of a report: one, or several reported as one."""
    dirs = [sweep_dir] if isinstance(sweep_dir, Path) else [Path(d) for d in sweep_dir]
    if not dirs:
        raise ReportError("no multirun directory given; pass DIR (multirun/RUN_NAME/DATE_TIME)")
    return dirs


def sweep_name(sweep_dir: SweepDirs) -> str:
    """The directories as the report's messages name them."""
    return " + ".join(str(d) for d in sweep_dirs(sweep_dir))


def output_dir(sweep_dir: SweepDirs, out_dir: Path | None = None) -> Path:
    """Where the report's files go: ``out_dir`` when given (``--out``), else the first
    directory."""
    return out_dir if out_dir is not None else sweep_dirs(sweep_dir)[0]


def find_jobs(sweep_dir: SweepDirs) -> list[Job]:
    """Every job under the directory (or directories), in job-number order."""
    dirs = sweep_dirs(sweep_dir)
    for d in dirs:
        if not d.is_dir():
            raise ReportError(f"{d}: not a directory; pass a multirun directory "
                              f"(multirun/RUN_NAME/DATE_TIME)")
    root = dirs[0] if len(dirs) == 1 else Path(os.path.commonpath([d.resolve() for d in dirs]))
    jobs = []
    seen: set[Path] = set()  # a directory given twice, or inside another, counts its jobs once
    for path in (p for d in dirs for p in d.rglob(OVERRIDES_FILE.name)):
        if path.parent.name != OVERRIDES_FILE.parent.name or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        job_dir = path.parent.parent
        overrides = dict(parse_override(str(item)) for item in
                         (read_yaml(path) or []))
        jobs.append(Job(
            name=(job_dir if len(dirs) == 1 else job_dir.resolve()).relative_to(root).as_posix(),
            path=job_dir,
            overrides=overrides,
            records=read_metrics(job_dir),
            higher_is_better=_configured_direction(job_dir / CONFIG_FILE),
            settings=_job_settings(job_dir),
        ))
    if not jobs:
        raise ReportError(
            f"{sweep_name(dirs)}: no jobs (no */{OVERRIDES_FILE.as_posix()} under it); pass the "
            f"directory of a multirun, e.g. multirun/RUN_NAME/DATE_TIME"
        )
    return sorted(jobs, key=lambda job: _natural_key(job.name))


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node} if prefix else {}
    flat: dict[str, Any] = {}
    for key, child in node.items():
        flat.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _job_settings(job_dir: Path) -> dict[str, Any]:
    """Scalar config values by dotted key and the config-group choices of a job: a key a job
    left at its default is reported at that value, not blank."""
    settings: dict[str, Any] = {}
    for name, pick in ((CONFIG_FILE, lambda c: c), (HYDRA_FILE, _group_choices)):
        path = job_dir / name
        if path.exists():
            settings.update(_flatten(pick(read_yaml(path))))
    return {key: value for key, value in settings.items()
            if isinstance(value, (int, float, str, bool))}


def _group_choices(hydra_config: Any) -> dict[str, Any]:
    choices = ((hydra_config or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {}
    # Hydra's own groups (hydra/launcher, ...) are not settings of the run.
    return {key: value for key, value in choices.items() if not key.startswith("hydra/")}


def _configured_direction(config_file: Path) -> bool | None:
    if not config_file.exists():
        return None
    config = read_yaml(config_file) or {}
    value = (config.get("metrics") or {}).get("higher_is_better")
    return value if isinstance(value, bool) else None


def sweeper_keys(sweep_dir: SweepDirs) -> list[str]:
    """Keys of ``hydra.sweeper.params`` in the multiruns' saved configs (empty if none)."""
    keys: list[str] = []
    for d in sweep_dirs(sweep_dir):
        path = d / MULTIRUN_FILE
        if path.exists():
            config = read_yaml(path) or {}
            params = ((config.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
            keys += [key for key in params if key not in keys]
    return keys


def swept_keys(jobs: Sequence[Job], fallback: Sequence[str] = ()) -> list[str]:
    """Override keys whose values differ between jobs, in command-line order (``resume``,
    ``overwrite`` and the pre-emption exit code left out: they say how a job was started or
    stops, not what it ran).

    Args:
        jobs: the jobs of the multirun.
        fallback: keys to use when no value differs (a one-job sweep): the sweeper's params.
    """
    order: list[str] = []
    for job in jobs:
        order += [key for key in job.overrides if key not in order and key not in RUN_CONTROL]
    varying = [key for key in order
               if len({repr(job.overrides.get(key)) for job in jobs}) > 1]
    if varying:
        return varying
    return [key for key in fallback if key in order]


def summarise(job: Job, metric: str, direction: str = "auto") -> dict[str, Any]:
    """Final value, best value and its kimg of ``metric`` in ``job`` (blank when absent).

    Args:
        job: the job.
        metric: the metric's name in metrics.jsonl.
        direction: auto | higher | lower (auto: the job's config, else the registered metric's;
            best is left blank when neither says).
    """
    values = [(float(r["kimg"]), float(r[metric])) for r in job.records if metric in r]
    row: dict[str, Any] = {"metric": metric, "final": "", "final_kimg": "", "best": "",
                           "best_kimg": "", "evaluations": len(values)}
    if not values:
        return row
    row["final_kimg"], row["final"] = values[-1]
    override = {"higher": True, "lower": False}.get(direction, job.higher_is_better)
    try:
        higher = higher_is_better(metric, override)
    except UnknownDirection:
        return row  # no registered metric says which value is best: --direction does
    finite = [v for v in values if math.isfinite(v[1])]
    if finite:
        best = (max if higher else min)(finite, key=lambda v: v[1])
        row["best_kimg"], row["best"] = best
    return row


def build_table(jobs: Sequence[Job], keys: Sequence[str], metric: str,
                direction: str = "auto") -> list[dict[str, Any]]:
    """One row per job: job, each swept key, then :data:`STAT_COLUMNS`."""
    return [{"job": job.name, **{key: job.value(key) for key in keys},
             **summarise(job, metric, direction)} for job in jobs]


def write_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: Path) -> None:
    """Write the table to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["job", *keys, *STAT_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: Sequence[dict[str, Any]], keys: Sequence[str], metric: str, path: Path) -> None:
    """One panel per swept key: final (filled) and best (open) ``metric`` of each job."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters and CI
    import matplotlib.pyplot as plt

    panels = [key for key in keys if key != SEED_KEY] or ["job"]
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(PANEL_INCHES[0] * len(panels), PANEL_INCHES[1]))
    done = [row for row in rows if row["final"] != ""]
    for ax, key in zip(axes[0], panels, strict=True):
        values = [row[key] for row in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            xs = [float(v) for v in values]
            if xs and min(xs) > 0 and max(xs) / min(xs) >= LOG_AXIS_RATIO:
                ax.set_xscale("log")
            ticks = sorted(set(xs))
            if len(ticks) <= MAX_VALUE_TICKS:  # a grid: label exactly the swept values
                ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                ax.minorticks_off()
        else:
            labels = sorted({str(v) for v in values}, key=_natural_key)
            xs = [float(labels.index(str(v))) for v in values]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.scatter(xs, [float(row["final"]) for row in done], label="final")
        best = [(x, float(row["best"])) for x, row in zip(xs, done, strict=True)
                if row["best"] != ""]
        if best:
            ax.scatter(*zip(*best, strict=True), facecolors="none", edgecolors="C1", label="best")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(f"{metric} over {len(done)} job(s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def final_value(job: Job, metric: str) -> float | None:
    """The last logged value of ``metric`` in ``job`` (None when it never logged it)."""
    values = [float(r[metric]) for r in job.records if metric in r]
    return values[-1] if values else None


def logged_metrics(jobs: Sequence[Job]) -> list[str]:
    """Every metric any record of the jobs holds, in first-seen order."""
    names: list[str] = []
    for job in jobs:
        for record in job.records:
            names += [k for k in record if k not in WHEN_KEYS and k not in names]
    return names


def check_metric_names(metrics: Sequence[str], jobs: Sequence[Job], sweep_dir: SweepDirs,
                       option: str) -> None:
    """Each name is a metric some job logged; otherwise one error naming the valid ones (a
    report of nothing would read as "every job failed")."""
    logged = logged_metrics(jobs)
    if not logged:
        raise ReportError(f"{sweep_name(sweep_dir)}: none of its {len(jobs)} job(s) has "
                          "metrics.jsonl records yet; run with metrics=toy|digits|fid50k")
    for name in metrics:
        if name not in logged:
            import difflib

            close = difflib.get_close_matches(name, logged, n=3, cutoff=0.5)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise ReportError(listed(f"{option}={name}: no job of {sweep_name(sweep_dir)} "
                                     f"logged this metric{hint}", "logged metrics", logged))


def final_metrics(jobs: Sequence[Job]) -> list[str]:
    """Every metric of the jobs' final records, in first-seen order."""
    names: list[str] = []
    for job in jobs:
        for record in job.records[-1:]:
            names += [k for k in record if k not in WHEN_KEYS and k not in names]
    return names


def group_table(jobs: Sequence[Job], group_keys: Sequence[str], metrics: Sequence[str]
                ) -> list[dict[str, Any]]:
    """One row per group of jobs sharing ``group_keys``' values: the keys, then for each
    metric ``M_mean``, ``M_std`` (sample standard deviation; blank for one job) and ``M_n``.

    Args:
        jobs: the jobs.
        group_keys: the override keys that define a group (the others, e.g. seed, vary).
        metrics: the metrics to aggregate (final values).
    """
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(repr(job.value(k)) for k in group_keys), []).append(job)
    rows = []
    for members in groups.values():
        row: dict[str, Any] = {k: members[0].value(k) for k in group_keys}
        for metric in metrics:
            values = [v for v in (final_value(job, metric) for job in members) if v is not None]
            row[f"{metric}_mean"] = statistics.fmean(values) if values else ""
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else ""
            row[f"{metric}_n"] = len(values)
        rows.append(row)
    return sorted(rows, key=lambda r: [_natural_key(str(r[k])) for k in group_keys])


def _cell(row: dict[str, Any], metric: str) -> str:
    mean, std, n = row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_n"]
    if mean == "":
        return "-"
    spread = f" ± {std:.{MD_DIGITS}g}" if std != "" else ""
    return f"{mean:.{MD_DIGITS}g}{spread} (n={n})"


def groups_markdown(rows: Sequence[dict[str, Any]], group_keys: Sequence[str],
                    metrics: Sequence[str]) -> str:
    """The grouped table in Markdown, ``mean ± std (n=N)`` per metric (printed and written)."""
    lines = ["| " + " | ".join([*group_keys, *metrics]) + " |",
             "|" + "---|" * (len(group_keys) + len(metrics))]
    lines += ["| " + " | ".join([*(str(row[k]) for k in group_keys),
                                 *(_cell(row, m) for m in metrics)]) + " |" for row in rows]
    return "\n".join(lines)


def jobs_text(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """The per-job table as aligned text: job, the swept keys, final and best (with kimg)."""
    def number(value: Any) -> str:
        return f"{value:.{MD_DIGITS}g}" if isinstance(value, float) else str(value)

    columns = ["job", *keys, "final", "final_kimg", "best", "best_kimg"]
    cells = [[number(row[c]) if row[c] != "" else "-" for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
              for line in cells]
    metric = rows[0]["metric"] if rows else ""
    return f"{metric}\n" + "\n".join(lines)


def write_groups(rows: Sequence[dict[str, Any]], group_keys: Sequence[str],
                 metrics: Sequence[str], csv_path: Path, md_path: Path, png_path: Path) -> None:
    """The grouped table as CSV, as Markdown (``mean ± std (n)``) and as error-bar plots."""
    columns = [*group_keys, *(f"{m}_{s}" for m in metrics for s in ("mean", "std", "n"))]
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(groups_markdown(rows, group_keys, metrics) + "\n", encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters and CI
    import matplotlib.pyplot as plt

    panels = max(len(metrics), 1)
    fig, axes = plt.subplots(1, panels, squeeze=False,
                             figsize=(PANEL_INCHES[0] * panels, PANEL_INCHES[1]))
    labels = [", ".join(f"{k}={row[k]}" for k in group_keys) for row in rows]
    for ax, metric in zip(axes[0], metrics, strict=False):
        shown = [(i, row) for i, row in enumerate(rows) if row[f"{metric}_mean"] != ""]
        ax.errorbar([i for i, _ in shown], [row[f"{metric}_mean"] for _, row in shown],
                    yerr=[row[f"{metric}_std"] or 0.0 for _, row in shown], fmt="o", capsize=4)
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right")
        ax.set_ylabel(metric)
        # Two lines, small: long metric names overran the neighbouring panel's title.
        ax.set_title(f"{metric}\nmean ± std over seeds", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def report_groups(sweep_dir: SweepDirs, group_keys: Sequence[str],
                  metrics: Sequence[str] | None = None, out_dir: Path | None = None
                  ) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write the grouped CSV, Markdown and PNG of a multirun; return their paths and rows.

    Args:
        sweep_dir: the multirun directory (or several, reported together).
        group_keys: the keys that define a group: overrides, or config values (a job that
            left a key at its default is grouped by that value).
        metrics: the metrics to aggregate (None: every metric of the final records).
        out_dir: where the files go (None: the first directory).
    """
    jobs = find_jobs(sweep_dir)
    unknown = [k for k in group_keys
               if all(k not in job.overrides and k not in job.settings for job in jobs)]
    if unknown:
        keys = sorted({k for job in jobs for k in job.overrides})
        raise ReportError(listed(f"--group-by {','.join(unknown)}: no job overrides it or has "
                                 f"it in its config", "the jobs' override keys", keys))
    if metrics:
        check_metric_names(metrics, jobs, sweep_dir, "--metrics")
    metrics = list(metrics) if metrics else final_metrics(jobs)
    if not metrics:
        raise ReportError(f"{sweep_name(sweep_dir)}: no job has metrics.jsonl records yet")
    rows = group_table(jobs, group_keys, metrics)
    out = output_dir(sweep_dir, out_dir)
    paths = [out / GROUPS_CSV, out / GROUPS_MD, out / GROUPS_PNG]
    write_groups(rows, group_keys, metrics, *paths)
    return paths, rows


def _mean_std(values: Sequence[float]) -> tuple[float, float | str]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else ""


def setting_name(values: dict[str, Any], sep: str) -> str:
    """``key=value`` of a group's settings joined by ``sep``; a blank value (a key the job's
    config does not have, such as the chain's settings of a run without one) is left out."""
    return sep.join(f"{k}={v}" for k, v in values.items() if str(v) != "")


def curve_table(jobs: Sequence[Job], group_keys: Sequence[str], metric: str
                ) -> list[dict[str, Any]]:
    """Mean and std of ``metric``, kimg and train_seconds at each evaluation of each group.

    The jobs of a group share their evaluation cadence, so the i-th records line up; a job
    with fewer records (failed, still running) leaves the later points with a smaller n.
    """
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        label = setting_name({k: job.value(k) for k in group_keys}, ", ") or "all jobs"
        groups.setdefault(label, []).append(job)
    rows = []
    for label, members in groups.items():
        series = [[r for r in job.records if metric in r] for job in members]
        for i in range(max((len(s) for s in series), default=0)):
            points = [s[i] for s in series if len(s) > i]
            seconds = [float(p[TRAIN_SECONDS]) for p in points if TRAIN_SECONDS in p]
            value_mean, value_std = _mean_std([float(p[metric]) for p in points])
            seconds_mean, seconds_std = _mean_std(seconds) if seconds else ("", "")
            rows.append({"group": label, "evaluation": i, "n": len(points),
                         "kimg_mean": statistics.fmean(float(p["kimg"]) for p in points),
                         "seconds_mean": seconds_mean, "seconds_std": seconds_std,
                         "value_mean": value_mean, "value_std": value_std})
    return rows


def job_floors(jobs: Sequence[Job], metric: str) -> list[float]:
    """The distinct floors of ``metric`` (its value for the training subset itself, in each
    job's ``metric_floors.json``, written by the overfitting callback), sorted."""
    floors = set()
    for job in jobs:
        path = job.path / FLOORS_FILE
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get(metric)
            if value is not None:
                floors.add(float(value))
    return sorted(floors)


def write_curves(rows: Sequence[dict[str, Any]], metric: str, csv_path: Path,
                 png_path: Path, floors: Sequence[float] = ()) -> None:
    """The curves as CSV and as two panels (against kimg, against training minutes), with a
    dashed line at each floor of the metric."""
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(row["group"] for row in rows))
    # The legend goes under the panels, where long group labels cannot hide the curves.
    legend_rows = math.ceil((len(groups) + len(floors)) / LEGEND_COLUMNS)
    legend_inches = LEGEND_ROW_INCHES * legend_rows
    fig, axes = plt.subplots(1, 2, squeeze=False,
                             figsize=(PANEL_INCHES[0] * 2, PANEL_INCHES[1] + legend_inches))
    for label in groups:
        mine = [row for row in rows if row["group"] == label]
        mean = [row["value_mean"] for row in mine]
        std = [row["value_std"] or 0.0 for row in mine]
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        n = max(row["n"] for row in mine)
        for ax, xs in ((axes[0][0], [row["kimg_mean"] for row in mine]),
                       (axes[0][1], [row["seconds_mean"] for row in mine])):
            if any(x == "" for x in xs):
                continue  # records written before train_seconds existed: kimg axis only
            xs = [x / 60 for x in xs] if ax is axes[0][1] else xs
            ax.plot(xs, mean, marker=".", label=f"{label} (n={n})")
            ax.fill_between(xs, low, high, alpha=0.2)
    for ax, xlabel in zip(axes[0], ("kimg", "training minutes"), strict=True):
        for floor in floors:
            ax.axhline(floor, color="black", ls="--", lw=0.8,
                       label=f"floor: the training subset itself ({floor:.3g})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        if all(row["value_mean"] > 0 for row in rows):
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=7,
               frameon=False)
    axes[0][0].set_title(f"{metric}: mean ± std over seeds", fontsize=9)
    fig.tight_layout(rect=(0, legend_inches / (PANEL_INCHES[1] + legend_inches), 1, 1))
    # group labels wider than the two panels would be cut at the figure's edge
    fig.savefig(png_path, bbox_inches="tight")
    plt.close(fig)


def reported_metric(sweep_dir: SweepDirs, jobs: Sequence[Job], metric: str | None) -> str:
    """``metric``, checked to be logged by the jobs; None: the headline of the first job that
    logged one."""
    if metric is None:
        metric = next((name for name in (job.headline() for job in jobs) if name), None)
        if metric is None:
            raise ReportError(f"{sweep_name(sweep_dir)}: none of its {len(jobs)} job(s) has "
                              f"metrics.jsonl records yet; run with metrics=toy|digits|fid50k")
    check_metric_names([metric], jobs, sweep_dir, "--metric")
    return metric


def report_curves(sweep_dir: SweepDirs, group_keys: Sequence[str], metric: str | None = None,
                  out_dir: Path | None = None) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write the time-to-quality CSV and PNG of a multirun; return their paths and rows.

    Args:
        sweep_dir: the multirun directory (or several, reported together).
        group_keys: the override keys that define a group (none: one group of every job).
        metric: the metric (None: the headline of the first job that logged one).
        out_dir: where the files go (None: the first directory).
    """
    jobs = find_jobs(sweep_dir)
    metric = reported_metric(sweep_dir, jobs, metric)
    rows = curve_table(jobs, group_keys, metric)
    out = output_dir(sweep_dir, out_dir)
    paths = [out / CURVES_CSV, out / CURVES_PNG]
    write_curves(rows, metric, *paths, floors=job_floors(jobs, metric))
    return paths, rows


def by_t_table(jobs: Sequence[Job], group_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Per group, half of the run and bucket position of t: D's mean real and fake logits,
    their gap and its accuracy, mean and std over the group's runs
    (:func:`logits_by_t.group_profiles`). Runs without diagnostics/d_by_t.csv are left out."""
    groups: dict[str, list[dict[tuple[str, int], dict[str, float]]]] = {}
    for job in jobs:
        profile = logits_by_t.t_profile(logits_by_t.read_logits_by_t(job.path))
        if profile:
            label = setting_name({k: job.value(k) for k in group_keys}, ", ") or "all jobs"
            groups.setdefault(label, []).append(profile)
    return [{"group": label, **row} for label, profiles in groups.items()
            for row in logits_by_t.group_profiles(profiles)]


def write_by_t(rows: Sequence[dict[str, Any]], csv_path: Path, png_path: Path) -> None:
    """The table as CSV and as panels: real logit, fake logit and their gap against the bucket
    of t (one line per group, one std band), the first half of the runs above the second."""
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(row["group"] for row in rows))
    values = ("real_logit", "fake_logit", "gap")
    legend_inches = LEGEND_ROW_INCHES * math.ceil(len(groups) / LEGEND_COLUMNS)
    fig, axes = plt.subplots(len(logits_by_t.HALVES), len(values), squeeze=False,
                             figsize=(PANEL_INCHES[0] * len(values),
                                      PANEL_INCHES[1] * len(logits_by_t.HALVES) + legend_inches))
    for i, half in enumerate(logits_by_t.HALVES):
        for j, value in enumerate(values):
            ax = axes[i][j]
            for label in groups:
                mine = [r for r in rows if r["group"] == label and r["half"] == half]
                xs = [r["position"] for r in mine]
                mean = [r[f"{value}_mean"] for r in mine]
                std = [0.0 if math.isnan(r[f"{value}_std"]) else r[f"{value}_std"] for r in mine]
                n = max((r["n"] for r in mine), default=0)
                ax.plot(xs, mean, marker=".", label=f"{label} (n={n})")
                ax.fill_between(xs, [m - d for m, d in zip(mean, std, strict=True)],
                                [m + d for m, d in zip(mean, std, strict=True)], alpha=0.2)
            ax.axhline(0.0, color="black", lw=0.6)
            ax.set_title(f"D's {value.replace('_', ' ')}, {half} half of the run", fontsize=9)
            ax.set_xlabel("bucket of t (0: clean; then tenths of [1, T], low to high)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=7,
               frameon=False)
    total = PANEL_INCHES[1] * len(logits_by_t.HALVES) + legend_inches
    fig.tight_layout(rect=(0, legend_inches / total, 1, 1))
    fig.savefig(png_path)
    plt.close(fig)


def by_t_text(rows: Sequence[dict[str, Any]]) -> str:
    """Per group: D's real-minus-fake logit gap, second half of the runs, at the clean bucket,
    the lowest and the highest bucket of t (mean ± std over runs)."""
    lines = []
    for label in dict.fromkeys(row["group"] for row in rows):
        late = [r for r in rows if r["group"] == label and r["half"] == logits_by_t.HALVES[-1]]
        if not late:
            continue
        picks = (("clean", late[0]), ("lowest t", late[min(1, len(late) - 1)]),
                 ("highest t", late[-1]))
        shown = ", ".join(f"{name} {r['gap_mean']:.2f} ± {r['gap_std']:.2f}"
                          for name, r in picks)
        lines.append(f"{label}: D's real-fake logit gap, second half ({late[0]['n']} runs): "
                     f"{shown}")
    return "\n".join(lines)


def report_by_t(sweep_dir: SweepDirs, group_keys: Sequence[str], out_dir: Path | None = None
                ) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write DIR/sweep_by_t.csv and .png (D's logits by bucket of t, per group); return their
    paths and rows.

    Args:
        sweep_dir: the multirun directory (or several, reported together).
        group_keys: the keys of the groups (none: one group of every job).
        out_dir: where the files go (None: the first directory).
    """
    jobs = find_jobs(sweep_dir)
    rows = by_t_table(jobs, group_keys)
    if not rows:
        raise ReportError(f"{sweep_name(sweep_dir)}: no job has "
                          f"{DIAGNOSTICS_DIR}/{D_BY_T_TABLE}; --by-t reads the "
                          f"diffusion diagnostics (callbacks.diffusion_diagnostics)")
    out = output_dir(sweep_dir, out_dir)
    paths = [out / BY_T_CSV, out / BY_T_PNG]
    write_by_t(rows, *paths)
    return paths, rows


def parse_compare(text: str, group_keys: Sequence[str]) -> tuple[str, str]:
    """``KEY=BASE`` of ``--compare``: KEY one of the ``--group-by`` keys."""
    key, eq, base = text.partition("=")
    if not eq or not key or not base:
        raise ReportError(f"--compare={text}: give KEY=BASE, e.g. --compare "
                          f"model.discriminator.t_conditioning=raw")
    if key not in group_keys:
        raise ReportError(f"--compare={text}: {key} is not a --group-by key "
                          f"({','.join(group_keys) or 'none given'}); add it to --group-by")
    return key, base


def _reading(pair: paired_comparison.Paired, metric: str) -> str:
    if not math.isfinite(pair.difference):
        return f"fewer than {paired_comparison.MIN_SEEDS} shared seeds"
    if not pair.separated:
        return "within the bound"
    try:
        higher = higher_is_better(metric, None)
    except UnknownDirection:
        return "higher" if pair.difference > 0 else "lower"
    return "better" if (pair.difference > 0) == higher else "worse"


def compare_table(jobs: Sequence[Job], group_keys: Sequence[str], key: str, base: str,
                  metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Each group whose ``key`` is not ``base`` against the group that differs from it only
    in ``key`` (= ``base``), per metric, by final value paired by seed: the docs' rule
    (:mod:`dgan.tracking.paired_comparison`). A group without such a base is left out."""
    arms: dict[tuple[str, ...], dict[Any, Job]] = {}
    for job in jobs:
        arms.setdefault(tuple(str(job.value(k)) for k in group_keys), {})[job.value(SEED_KEY)] = job
    at = list(group_keys).index(key)
    rows = []
    for values, runs in arms.items():
        base_runs = arms.get((*values[:at], base, *values[at + 1:]))
        if values[at] == base or base_runs is None:
            continue
        for metric in metrics:
            finals = [{seed: v for seed, job in side.items()
                       if (v := final_value(job, metric)) is not None}
                      for side in (runs, base_runs)]
            if not any(finals):  # a metric neither arm logs (cacc_* of unconditional arms)
                continue
            pair = paired_comparison.paired(*finals)
            rows.append({**dict(zip(group_keys, values, strict=True)), "against": base,
                         "metric": metric, "seeds": pair.seeds, "arm_mean": pair.arm_mean,
                         "base_mean": pair.base_mean, "difference": pair.difference,
                         "pooled_sd": pair.pooled_sd, "bound": pair.bound,
                         "reading": _reading(pair, metric)})
    return rows


def report_compare(sweep_dir: SweepDirs, group_keys: Sequence[str], compare: str,
                   metrics: Sequence[str] | None = None, out_dir: Path | None = None
                   ) -> tuple[Path, list[dict[str, Any]]]:
    """Write DIR/sweep_compare.csv (every arm against its base, see :func:`compare_table`);
    return it and its rows.

    Args:
        sweep_dir: the multirun directory (or several, reported together).
        group_keys: the keys of the arms.
        compare: ``KEY=BASE``: the arms differ from their base in KEY only.
        metrics: the metrics compared (None: the headline).
        out_dir: where the file goes (None: the first directory).
    """
    key, base = parse_compare(compare, group_keys)
    jobs = find_jobs(sweep_dir)
    if metrics:
        check_metric_names(metrics, jobs, sweep_dir, "--metrics")
    else:
        metrics = [reported_metric(sweep_dir, jobs, None)]
    rows = compare_table(jobs, group_keys, key, base, metrics)
    if not rows:
        raise ReportError(f"--compare={compare}: no group of {sweep_name(sweep_dir)} has a "
                          f"base with {key}={base} and the same other --group-by values")
    path = output_dir(sweep_dir, out_dir) / COMPARE_CSV
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*group_keys, *COMPARE_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    return path, rows


def compare_text(rows: Sequence[dict[str, Any]], group_keys: Sequence[str], key: str) -> str:
    """One line per arm and metric: the means, the paired difference, the bound, the reading."""
    lines = []
    for row in rows:
        others = ", ".join(f"{k}={row[k]}" for k in group_keys if k != key)
        lines.append(f"{key}={row[key]} against {row['against']} ({others}), {row['seeds']} "
                     f"seeds: {row['metric']} {row['arm_mean']:.4g} vs {row['base_mean']:.4g}, "
                     f"paired difference {row['difference']:+.4g}, bound {row['bound']:.4g} "
                     f"({paired_comparison.SEPARATION_SD:g} pooled sd): {row['reading']}")
    return "\n".join(lines)


def read_dynamics(job_dir: Path) -> list[dict[str, str]]:
    """The overfitting callback's table of a job (none when it did not write one)."""
    path = job_dir / DIAGNOSTICS_DIR / DYNAMICS_TABLE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def overfit_table(jobs: Sequence[Job], group_keys: Sequence[str], metric: str
                  ) -> list[dict[str, Any]]:
    """One row per job: its group keys, seed, then :func:`overfit_criteria.run_overfitting`."""
    return [{"job": job.name, **{k: job.value(k) for k in group_keys},
             SEED_KEY: job.value(SEED_KEY),
             **overfit_criteria.run_overfitting(job.records, read_dynamics(job.path),
                                                metric)}
            for job in jobs]


def overfit_verdicts(rows: Sequence[dict[str, Any]], group_keys: Sequence[str]
                     ) -> list[dict[str, Any]]:
    """Each group run with the chain against the group without it that shares every other
    group key (``diffusion=stylegan2 augment=ada`` against ``diffusion=none augment=ada``),
    paired by seed: :func:`overfit_criteria.verdict`. A key the plain group does not have (blank:
    ``diffusion.clean_fraction`` of a run without a diffusion) matches any value, so arms that
    differ only in a setting of the chain are each compared with the one plain arm."""
    if DIFFUSION_KEY not in group_keys:
        raise ReportError(f"--overfit compares the arms with and without the chain: --group-by "
                          f"must include {DIFFUSION_KEY} (got {','.join(group_keys) or 'none'})")
    others = [k for k in group_keys if k != DIFFUSION_KEY]
    arms: dict[tuple[str, ...], dict[Any, dict[str, Any]]] = {}
    for row in rows:
        key = tuple(str(row[k]) for k in group_keys)
        arms.setdefault(key, {})[row[SEED_KEY]] = row
    named = {key: dict(zip(group_keys, key, strict=True)) for key in arms}
    plains = {key: values for key, values in named.items()
              if values[DIFFUSION_KEY] == overfit_criteria.PLAIN}
    verdicts = []
    for key, runs in arms.items():
        values = named[key]
        if key in plains:
            continue
        bases = [base for base, plain in plains.items()
                 if all(plain[k] in (values[k], "") for k in others)]
        if len(bases) == 1:
            plain = plains[bases[0]]
            verdicts.append({**values, "against": setting_name(
                {k: plain[k] for k in [DIFFUSION_KEY, *others]}, ", "),
                **overfit_criteria.verdict(arms[bases[0]], runs)})
    return verdicts


def report_overfit(sweep_dir: SweepDirs, group_keys: Sequence[str], metric: str | None = None,
                   out_dir: Path | None = None
                   ) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    """Write DIR/sweep_overfit.csv (the criteria per job); return it, its rows and the
    verdicts (docs/results.md, "Limited data until D overfits").

    Args:
        sweep_dir: the multirun directory (or several, reported together).
        group_keys: the keys of the arms; must include ``diffusion``.
        metric: the FID (None: the headline of the first job that logged one).
        out_dir: where the file goes (None: the first directory).
    """
    jobs = find_jobs(sweep_dir)
    metric = reported_metric(sweep_dir, jobs, metric)
    try:
        rises = higher_is_better(metric, None)
    except UnknownDirection as err:
        raise ReportError(str(err)) from None
    if rises:
        raise ReportError(f"--overfit reads a metric that falls as G improves (an FID); "
                          f"{metric} rises")
    rows = overfit_table(jobs, group_keys, metric)
    verdicts = overfit_verdicts(rows, group_keys)
    path = output_dir(sweep_dir, out_dir) / OVERFIT_CSV
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["job"])
        writer.writeheader()
        writer.writerows(rows)
    return path, rows, verdicts


def overfit_text(rows: Sequence[dict[str, Any]], verdicts: Sequence[dict[str, Any]],
                 group_keys: Sequence[str]) -> str:
    """Per arm: how many runs overfit / had the chain on; then each verdict in one line."""
    lines = []
    arms: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        arms.setdefault(tuple(str(row[k]) for k in group_keys), []).append(row)
    for key, runs in arms.items():
        name = setting_name(dict(zip(group_keys, key, strict=True)), " ")
        lines.append(f"{name}: overfits in {sum(r['overfits'] for r in runs)} of {len(runs)}, "
                     f"chain on in {sum(r['chain_on'] for r in runs)} of {len(runs)}")
    for v in verdicts:
        name = setting_name({k: v[k] for k in group_keys}, " ")
        lines.append(f"{name} against {v['against']}: {v['verdict'].upper()} ({v['why']}; "
                     f"paired difference {v['paired_difference']:.2f}, pooled sd "
                     f"{v['pooled_sd']:.2f}, {v['seeds']} seeds)")
    return "\n".join(lines)


def report(sweep_dir: SweepDirs, metric: str | None = None, keys: Sequence[str] | None = None,
           direction: str = "auto", csv_path: Path | None = None,
           png_path: Path | None = None, out_dir: Path | None = None
           ) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Write the CSV table and the PNG plot of a multirun; return their paths and the rows.

    Args:
        sweep_dir: the multirun directory (or several, reported together).
        metric: metric to report (None: the headline of the first job that logged one).
        keys: swept keys to report (None: inferred, see :func:`swept_keys`).
        direction: auto | higher | lower, which way the metric improves.
        csv_path: table path (None: ``sweep_dir/sweep_report.csv``).
        png_path: plot path (None: ``sweep_dir/sweep_report.png``).
        out_dir: where the default table and plot go instead of ``sweep_dir``.
    """
    jobs = find_jobs(sweep_dir)
    metric = reported_metric(sweep_dir, jobs, metric)
    keys = list(keys) if keys else swept_keys(jobs, sweeper_keys(sweep_dir))
    rows = build_table(jobs, keys, metric, direction)
    csv_path = csv_path or output_dir(sweep_dir, out_dir) / CSV_NAME
    png_path = png_path or output_dir(sweep_dir, out_dir) / PNG_NAME
    write_csv(rows, keys, csv_path)
    plot(rows, keys, metric, png_path)
    return csv_path, png_path, rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from dgan.config.cli_args import OneLineParser

    parser = OneLineParser(
        prog="python -m dgan.sweep_report",
        description="Tabulate (CSV) and plot (PNG) the headline metric of a Hydra multirun.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", nargs="+",
                        help="multirun directory (multirun/RUN_NAME/DATE_TIME); several are "
                             "reported together, their files written into the first")
    parser.add_argument("--out", type=Path, default=None, metavar="OUT",
                        help="directory for every file of the report (default: the first DIR), "
                             "e.g. to report on directories one cannot or should not write to")
    parser.add_argument("--metric", default=None,
                        help="metric to report (default: the headline, the first one logged)")
    parser.add_argument("--keys", default=None,
                        help="comma-separated swept keys (default: the overrides that differ)")
    parser.add_argument("--direction", choices=("auto", "higher", "lower"), default="auto",
                        help="which way the metric improves, for 'best' (auto: job config, "
                             "else the registered metric's)")
    parser.add_argument("--csv", type=Path, default=None,
                        help=f"output table (default: DIR/{CSV_NAME})")
    parser.add_argument("--png", type=Path, default=None,
                        help=f"output plot (default: DIR/{PNG_NAME})")
    parser.add_argument("--group-by", default=None,
                        help="comma-separated keys: mean, std and n of the jobs sharing their "
                             f"values (DIR/{GROUPS_CSV}, {GROUPS_MD}, {GROUPS_PNG})")
    parser.add_argument("--curves", action="store_true",
                        help="the metric against kimg and training time, per --group-by group "
                             f"(DIR/{CURVES_CSV}, {CURVES_PNG})")
    parser.add_argument("--overfit", action="store_true",
                        help="per job: did the FID rise from its best and D's logit gap grow, "
                             "was the chain on; each arm with the chain against its plain arm, "
                             f"by --group-by (DIR/{OVERFIT_CSV})")
    parser.add_argument("--by-t", action="store_true",
                        help="D's real and fake logits by bucket of t, per --group-by group, "
                             f"first and second half of the runs (DIR/{BY_T_CSV}, {BY_T_PNG})")
    parser.add_argument("--compare", default=None, metavar="KEY=BASE",
                        help="each --group-by group against the one that differs from it only "
                             "in KEY (= BASE), final values paired by seed, per --metrics "
                             "(default: the headline): the mean difference against 2 pooled "
                             f"standard deviations (DIR/{COMPARE_CSV})")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated metrics to aggregate with --group-by "
                             "(default: every metric of the final records)")
    args = sys.argv[1:] if argv is None else list(argv)
    return parser.parse_args(dashed(args, valued=("--compare",)))


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def check_output_dir(path: Path | None) -> None:
    """``--out`` is a directory that exists or can be made; it is made before any job is
    read."""
    from dgan.core.errors import ConfigError
    from dgan.files.writable import check_creatable_dir

    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ReportError(f"--out={path}: is a file; give a directory for the report's files")
    try:
        check_creatable_dir(path, "--out")
    except ConfigError as err:
        raise ReportError(f"--out={path}: {str(err).partition(': ')[2]}") from None
    path.mkdir(parents=True, exist_ok=True)


def check_output_file(option: str, path: Path | None) -> None:
    """``--csv``/``--png`` can be written, before any job is read (a file in a directory that
    cannot exist would otherwise stop the report at its end)."""
    from dgan.core.errors import ConfigError
    from dgan.files.writable import check_creatable_dir

    if path is None:
        return
    if path.is_dir():
        raise ReportError(f"{option}={path}: is a directory; give a file name, e.g. "
                          f"{option}={path / (CSV_NAME if option == '--csv' else PNG_NAME)}")
    try:
        check_creatable_dir(path.parent, option)
    except ConfigError as err:
        raise ReportError(f"{option}={path}: {str(err).partition(': ')[2]}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_output_file("--csv", args.csv)
        check_output_file("--png", args.png)
        check_output_dir(args.out)
        # --compare's KEY is checked before any job is read
        compare_key = (parse_compare(args.compare, _split(args.group_by) or [])[0]
                       if args.compare else None)
        if args.overfit and DIFFUSION_KEY not in (_split(args.group_by) or []):
            raise ReportError(f"--overfit compares the arms with and without the chain: add "
                              f"--group-by {DIFFUSION_KEY}[,KEY...] (e.g. --group-by "
                              f"{DIFFUSION_KEY},augment)")
        csv_path, png_path, rows = report(args.dir, args.metric, _split(args.keys),
                                          args.direction, args.csv, args.png, args.out)
        keys = [key for key in (rows[0] if rows else {}) if key not in ("job", *STAT_COLUMNS)]
        print(jobs_text(rows, keys))
        group_keys = _split(args.group_by)
        if group_keys:
            paths, groups = report_groups(args.dir, group_keys, _split(args.metrics), args.out)
            metrics = [c.removesuffix("_mean") for c in (groups[0] if groups else {})
                       if c.endswith("_mean")]
            print(groups_markdown(groups, group_keys, metrics))
            print(f"{len(groups)} group(s): {', '.join(str(p) for p in paths)}")
        if args.curves:
            paths, points = report_curves(args.dir, group_keys or [], args.metric, args.out)
            print(f"curves ({len(points)} points): {', '.join(str(p) for p in paths)}")
        if args.overfit:
            path, overfit_rows, verdicts = report_overfit(args.dir, group_keys or [],
                                                          args.metric, args.out)
            print(overfit_text(overfit_rows, verdicts, group_keys or []))
            print(f"overfitting per job: {path}")
        if args.by_t:
            paths, by_t_rows = report_by_t(args.dir, group_keys or [], args.out)
            print(by_t_text(by_t_rows))
            print(f"D by t: {', '.join(str(p) for p in paths)}")
        if compare_key is not None:
            path, compare_rows = report_compare(args.dir, group_keys or [], args.compare,
                                                _split(args.metrics), args.out)
            print(compare_text(compare_rows, group_keys or [], compare_key))
            print(f"arms against their base: {path}")
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    missing = [row["job"] for row in rows if row["final"] == ""]
    if missing:
        print(f"warning: no {rows[0]['metric']} yet for job(s) {', '.join(missing)} "
              f"(failed or still running)", file=sys.stderr)
    print(f"{len(rows)} job(s): table {csv_path}, plot {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
