"""How far D overfits, measured the same way in every run, with the diffusion or without it.

After the first step and every ``every_kimg`` (the status-line tick by default) the callback
logs to every logger:

- ``overfit/r_t``: E[sign(D(x))] over the clean training reals D scored since the last tick,
  StyleGAN2-ADA's overfitting heuristic. The loss reports the signs of the reals that reached D
  undiffused (t = 0, or all of them without a diffusion); where the loss cannot tell (t never 0,
  or the ProjectedGAN feature diffusion inside D), D scores each batch's clean reals once more,
  without gradients.
- ``overfit/logit_train``, ``overfit/logit_heldout``, ``overfit/logit_fake``: D's mean raw
  logit, in eval mode and at t = 0, on a fixed sample of training images, of held-out images
  (those outside a ``dataset.max_size`` subset, or a ``dataset.holdout`` split) and of G's
  images from fixed latents. G, not G_ema: those are the fakes D is trained against.
- ``overfit/gap``: logit_train - logit_heldout. Without held-out images both are left out.

The diffusion's own ``diffusion/r_d`` (diffused reals) is logged by the adaptive update. With
``dataset.max_size`` and metrics against the full dataset, the FID of the training subset
itself (its floor) is computed once per dataset, subset and metric (cached), written to
``metric_floors.json`` and logged as ``metrics/NAME_floor``. ``diagnostics/dynamics.png`` draws
the run (r_d with its target, r_t, p and T, the augmentation's p; the logits and their gap; D's
mean logit per t bucket of the training reals), with its values in ``dynamics.csv`` and
``dynamics_t.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dgan.callbacks.cadence import EveryKimg
from dgan.callbacks.diffusion_diagnostics import DiffusionDiagnostics, t_buckets
from dgan.data.images import ImageFileError
from dgan.diffusion.feature_noise import FeatureDiffusion
from dgan.diffusion.process import Diffusion
from dgan.files.atomic import atomic_write_bytes
from dgan.files.run_files import DIAGNOSTICS_DIR, DYNAMICS_TABLE, FLOORS_FILE
from dgan.tracking.records import log_image_file, log_scalars
from dgan.training.losses.base import CLEAN_COUNT, CLEAN_SIGNS

PREFIX = "overfit"
PICTURE = "dynamics.png"
TABLE = DYNAMICS_TABLE
T_TABLE = "dynamics_t.csv"
FLOOR_SUFFIX = "_floor"
# p and T are the diffusion's; augment_p is the augmentation's (ADA's or DiffAugment's), so that
# an ADA run without the diffusion shows its own adaptive p beside r_t.
COLUMNS = ["kimg", "r_t", "logit_train", "logit_heldout", "logit_fake", "gap", "p", "T", "r_d",
           "d_target", "augment_p"]
T_COLUMNS = ["kimg", "t_lo", "t_hi", "logit"]
# The heat map's colour bar, in axes coordinates of its panel (right of it, full height).
COLORBAR_BOX = (1.01, 0.0, 0.02, 1.0)
# Bump when the floor's computation changes, so that cached floors are recomputed.
FLOOR_FORMAT = 1


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class OverfittingMonitor(L.Callback):
    """Logs r_t, D's logits on training, held-out and generated images, and their gap.

    Args:
        run_dir: the run directory (files go to ``<run_dir>/diagnostics``).
        every_kimg: period of the measurements in thousands of images (0: only at the end).
        picture_every_kimg: period of ``dynamics.png`` (0: only at the end).
        num_samples: training images, held-out images and fakes scored at each tick.
        bucket_samples: training images diffused per t bucket (the first of those scored).
        num_buckets: buckets of [1, T] besides the clean t = 0.
        batch_size: images per forward pass of D.
        floor: compute the metrics' floor (the training subset's own FID against the full set).
        seed: seed of the samples, latents and diffusion noise.
    """

    def __init__(self, run_dir: str | Path, every_kimg: float = 4.0,
                 picture_every_kimg: float = 50.0, num_samples: int = 128,
                 bucket_samples: int = 32, num_buckets: int = 5, batch_size: int = 64,
                 floor: bool = True, seed: int = 0) -> None:
        for key, value in (("num_samples", num_samples), ("bucket_samples", bucket_samples),
                           ("num_buckets", num_buckets), ("batch_size", batch_size)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{key}={value!r} must be an integer >= 1")
        self.run_dir = Path(run_dir)
        self.out_dir = self.run_dir / DIAGNOSTICS_DIR
        self.cadence = EveryKimg(every_kimg)
        self.picture_cadence = EveryKimg(picture_every_kimg)
        self.num_samples = int(num_samples)
        self.bucket_samples = int(bucket_samples)
        self.num_buckets = int(num_buckets)
        self.batch_size = int(batch_size)
        self.floor = bool(floor)
        self.seed = int(seed)
        self.history: list[list[float]] = []  # rows of COLUMNS
        self.t_history: list[list[float]] = []  # rows of T_COLUMNS
        self.floors: dict[str, float] = {}
        self._sums: torch.Tensor | None = None  # (clean signs, clean count) on the device
        self._own_pass: bool | None = None  # D scores the clean reals itself (decided once)
        self._fixed: dict[str, torch.Tensor] | None = None
        self.heldout_raw: list[int] = []  # raw indices of the held-out images scored

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.floor and trainer.is_global_zero:
            self.floors = self.compute_floors(trainer)
            if self.floors:
                text = json.dumps(self.floors, indent=2) + "\n"
                atomic_write_bytes(self.run_dir / FLOORS_FILE, text.encode())
                log_scalars(trainer, {f"metrics/{k}{FLOOR_SUFFIX}": v
                                      for k, v in self.floors.items()}, pl_module.kimg)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._accumulate(pl_module, outputs, batch)
        # Both schedules advance at every step; a picture comes with a fresh measurement.
        due = self.cadence.due(pl_module.kimg, trainer.should_stop)
        draw = self.picture_cadence.due(pl_module.kimg, trainer.should_stop)
        # Also after the first step: where D starts, and every column in the loggers from the
        # first rows on (a column that first appears after a resume would rewrite the CSV).
        first = pl_module.cur_step == 1 and not self.history and not trainer.should_stop
        if due or draw or first:
            self.tick(trainer, pl_module, draw=draw)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.tick(trainer, pl_module, draw=True)

    # ------------------------------------------------------------------ r_t

    def _accumulate(self, pl_module: L.LightningModule, outputs: Any, batch: Any) -> None:
        if self._own_pass is None:
            reported = isinstance(outputs, dict) and CLEAN_COUNT in outputs
            self._own_pass = not (reported and sees_clean_reals(pl_module.diffusion))
        if self._own_pass:
            real, c = batch
            with torch.no_grad():
                logits = pl_module.D(real, c, clean_t(pl_module.diffusion, real)).float()
            signs = logits.sign().sum()
            count = torch.full((), logits.numel(), device=signs.device, dtype=torch.float32)
        else:
            signs = outputs[CLEAN_SIGNS].detach().float()
            count = outputs[CLEAN_COUNT].detach().float().to(signs.device)
        sums = torch.stack([signs, count])
        self._sums = sums if self._sums is None else self._sums.to(sums) + sums

    def _take_r_t(self, trainer: L.Trainer, device: torch.device) -> float:
        """r_t since the last tick over every rank (each rank calls this); NaN if none."""
        sums = self._sums.to(device) if self._sums is not None else torch.zeros(2, device=device)
        self._sums = None
        totals = trainer.strategy.reduce(sums.float(), reduce_op="sum").cpu().tolist()
        return totals[0] / totals[1] if totals[1] > 0 else math.nan

    # ------------------------------------------------------------------ measurements

    def tick(self, trainer: L.Trainer, pl_module: L.LightningModule, draw: bool = False
             ) -> dict[str, float] | None:
        """Measure, log and write (and draw ``dynamics.png``); returns the logged values on
        rank 0."""
        r_t = self._take_r_t(trainer, pl_module.device)
        if not trainer.is_global_zero:
            return None
        kimg = round(pl_module.kimg, 3)
        if self.history and self.history[-1][0] == kimg:
            # Training ended right after a tick (or a finished run was resumed): no new values.
            if draw:
                self._draw(trainer, kimg)
            return None
        scores, buckets = self.score(trainer.datamodule.dataset, pl_module)
        gap = scores["logit_train"] - scores["logit_heldout"]
        diffusion, adaptive = pl_module.diffusion, getattr(pl_module, "adaptive", None)
        augment = getattr(pl_module, "augment", None)
        last_r_d = getattr(adaptive, "last_r_d", None)
        row = {"kimg": kimg, "r_t": r_t, **scores, "gap": gap,
               "p": float(diffusion.p) if diffusion is not None else math.nan,
               "T": float(diffusion.T) if diffusion is not None else math.nan,
               "r_d": float(last_r_d) if last_r_d is not None else math.nan,
               "d_target": float(adaptive.d_target) if adaptive is not None else math.nan,
               "augment_p": float(augment.p) if augment is not None else math.nan}
        self.history.append([row[key] for key in COLUMNS])
        self.t_history.extend([kimg, lo, hi, logit] for lo, hi, logit in buckets)
        logged = {f"{PREFIX}/{key}": row[key] for key in
                  ("r_t", "logit_train", "logit_heldout", "logit_fake", "gap")
                  if _finite(row[key])}
        log_scalars(trainer, logged, kimg)
        self._write_tables()
        if draw:
            self._draw(trainer, kimg)
        return logged

    def _draw(self, trainer: L.Trainer, kimg: float) -> None:
        picture = plot_dynamics(self.history, self.t_history, self.out_dir / PICTURE, self.floors)
        log_image_file(trainer, f"{DIAGNOSTICS_DIR}/dynamics", picture, kimg, f"kimg {kimg:.1f}")

    def fixed_inputs(self, dataset: Any, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        """The fixed training and held-out images (CPU), their labels and the fakes' latents."""
        if self._fixed is not None:
            return self._fixed
        gen = torch.Generator().manual_seed(self.seed)
        size = int(getattr(dataset, "raw_size", len(dataset)))  # no mirrored copies
        idx, train = self._readable(dataset.__getitem__, torch.randperm(size, generator=gen))
        fixed = {"train": torch.stack([x for x, _ in train]).float(),
                 "train_c": torch.stack([torch.as_tensor(c) for _, c in train]).float()}
        fixed["z"] = torch.randn(len(idx), pl_module.G.z_dim, generator=gen)
        heldout = int(getattr(dataset, "heldout_size", 0))
        if heldout:
            picks, items = self._readable(dataset.heldout_item,
                                          torch.randperm(heldout, generator=gen))
            raw = dataset.heldout_raw_indices
            self.heldout_raw = [int(raw[k]) for k in picks]
            fixed["heldout"] = torch.stack([x for x, _ in items]).float()
            fixed["heldout_c"] = torch.stack([torch.as_tensor(c) for _, c in items]).float()
        self._fixed = fixed
        return fixed

    def _readable(self, read: Any, order: torch.Tensor) -> tuple[list[int], list[Any]]:
        """The first ``num_samples`` items of ``order`` that ``read`` can read, and their
        indices. A corrupt file is the data loader's to report: met there, it stops the run
        between two steps with a checkpoint; met here, it would stop it inside a hook."""
        picks, items = [], []
        for k in order.tolist():
            try:
                items.append(read(k))
            except ImageFileError:
                continue
            picks.append(k)
            if len(picks) == self.num_samples:
                break
        return picks, items

    @torch.no_grad()
    def score(self, dataset: Any, pl_module: L.LightningModule
              ) -> tuple[dict[str, float], list[tuple[int, int, float]]]:
        """D's mean logits (eval mode, t = 0) and the (t_lo, t_hi, mean logit) buckets."""
        fixed = self.fixed_inputs(dataset, pl_module)
        G, D, diffusion = pl_module.G, pl_module.D, pl_module.diffusion
        modes = (G.training, D.training)
        G.eval()
        D.eval()
        try:
            scores = {"logit_train": self.mean_logit(pl_module, fixed["train"],
                                                     fixed["train_c"]),
                      "logit_heldout": math.nan}
            if "heldout" in fixed:
                scores["logit_heldout"] = self.mean_logit(pl_module, fixed["heldout"],
                                                          fixed["heldout_c"])
            fakes = [G(z.to(pl_module.device), c.to(pl_module.device), noise_mode="const")
                     .float().cpu() for z, c in zip(fixed["z"].split(self.batch_size),
                                                    fixed["train_c"].split(self.batch_size),
                                                    strict=True)]
            scores["logit_fake"] = self.mean_logit(pl_module, torch.cat(fakes),
                                                   fixed["train_c"])
            buckets = [(0, 0, self.mean_logit(pl_module, fixed["train"][:self.bucket_samples],
                                              fixed["train_c"][:self.bucket_samples]))]
            if pixel_diffusion(diffusion):
                buckets += self._diffused_buckets(pl_module, diffusion, fixed)
        finally:
            G.train(modes[0])
            D.train(modes[1])
        return scores, buckets

    def _diffused_buckets(self, pl_module: L.LightningModule, diffusion: Diffusion,
                          fixed: dict[str, torch.Tensor]) -> list[tuple[int, int, float]]:
        gen = torch.Generator().manual_seed(self.seed + 1)
        x = fixed["train"][:self.bucket_samples]
        c = fixed["train_c"][:self.bucket_samples]
        rows = []
        for lo, hi in t_buckets(int(diffusion.T), self.num_buckets)[1:]:
            t = torch.randint(lo, hi + 1, (len(x),), generator=gen)
            y = DiffusionDiagnostics._diffuse(diffusion, x.to(pl_module.device),
                                              t.to(pl_module.device), gen)
            rows.append((lo, hi, self.mean_logit(pl_module, y, c, t)))
        return rows

    def mean_logit(self, pl_module: L.LightningModule, x: torch.Tensor, c: torch.Tensor,
                   t: torch.Tensor | None = None) -> float:
        """D's mean raw logit on ``x`` (labels ``c``) at ``t`` (None: t = 0, undiffused)."""
        total, count = 0.0, 0
        device = pl_module.device
        for i in range(0, len(x), self.batch_size):
            xb = x[i:i + self.batch_size].to(device)
            cb = c[i:i + self.batch_size].to(device)
            tb = clean_t(pl_module.diffusion, xb) if t is None else t[i:i + self.batch_size]
            logits = pl_module.D(xb, cb, None if tb is None else tb.to(device)).float()
            total += float(logits.sum())
            count += logits.numel()
        return total / max(count, 1)

    # ------------------------------------------------------------------ floor

    def compute_floors(self, trainer: L.Trainer) -> dict[str, float]:
        """The training subset's own FID against the metrics' reference set, per FID metric
        (none unless the run's metrics compare with a larger set than the training set)."""
        from dgan.callbacks.metrics import MetricsCallback

        metrics = next((cb for cb in trainer.callbacks if isinstance(cb, MetricsCallback)), None)
        train = trainer.datamodule.dataset
        if metrics is None or metrics.reference_dataset is None \
                or metrics.reference_dataset is train:
            return {}
        return {name: metric_floor(name, train, metrics.reference_dataset,
                                   metrics.cache_dir, metrics.weights_dir, metrics.batch_size)
                for name in metrics.metrics if name.startswith("fid")}

    # ------------------------------------------------------------------ files and state

    def _write_tables(self) -> None:
        for name, columns, rows in ((TABLE, COLUMNS, self.history),
                                    (T_TABLE, T_COLUMNS, self.t_history)):
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(columns)
            writer.writerows(rows)
            atomic_write_bytes(self.out_dir / name, buffer.getvalue().encode())

    def state_dict(self) -> dict[str, Any]:
        sums = None if self._sums is None else self._sums.detach().cpu().tolist()
        return {**self.cadence.state_dict(),
                "picture_next_kimg": self.picture_cadence.next_kimg,
                "history": self.history, "t_history": self.t_history, "sums": sums}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.cadence.load_state_dict(state_dict)
        self.picture_cadence.next_kimg = float(state_dict["picture_next_kimg"])
        # A checkpoint written before a column was added holds shorter rows: the new column is
        # unknown (nan) over that part of the run.
        self.history = [list(row) + [math.nan] * (len(COLUMNS) - len(row))
                        for row in state_dict["history"]]
        self.t_history = [list(row) for row in state_dict["t_history"]]
        sums = state_dict.get("sums")
        self._sums = None if sums is None else torch.tensor(sums)


def pixel_diffusion(diffusion: Any) -> bool:
    """Whether ``diffusion`` diffuses the images before a D that is told t (not ProjectedGAN's
    feature diffusion, which runs inside D)."""
    return isinstance(diffusion, Diffusion) and not isinstance(diffusion, FeatureDiffusion)


def sees_clean_reals(diffusion: Any) -> bool:
    """Whether some reals reach D undiffused, with a t = 0 the loss can report."""
    if diffusion is None:
        return True
    return pixel_diffusion(diffusion) and diffusion.t_sampling == "pool" \
        and diffusion.num_clean > 0


def clean_t(diffusion: Any, x: torch.Tensor) -> torch.Tensor | None:
    """What D is given as t for undiffused images: zeros for the pixel diffusion's D (which is
    told t), None otherwise (no diffusion, or ProjectedGAN's D, whose third argument is the
    feature diffusion: None scores the clean features)."""
    if pixel_diffusion(diffusion):
        return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return None


def metric_floor(name: str, train: Any, reference: Any, cache_dir: Path | None,
                 weights_dir: Path | None, batch_size: int) -> float:
    """FID metric ``name`` of the training images themselves against ``reference`` (cached).

    Args:
        name: an FID metric (e.g. ``fid_digits2k_full``); its count is replaced by the number
            of training images, each taken once.
        train: the training set (a ``dataset.max_size`` subset).
        reference: the set the metric compares with.
        cache_dir: cache of real statistics and of floors (None: ``~/.cache/dgan``).
        weights_dir: pre-downloaded feature-extractor weights.
        batch_size: images per forward pass of the feature extractor.
    """
    from dgan.metrics.digits_features import default_cache_dir
    from dgan.metrics.image_set import ImageSetGenerator
    from dgan.metrics.registry import MetricOptions, lookup_metric

    key = {"format": FLOOR_FORMAT, "metric": name,
           "train": str(getattr(train, "fingerprint", "")),
           "reference": str(getattr(reference, "fingerprint", ""))}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / "floors" / f"{name}-{digest}.json"
    cacheable = bool(key["train"] and key["reference"])
    if cacheable and path.is_file():
        return float(json.loads(path.read_text(encoding="utf-8"))["value"])
    fn, _ = lookup_metric(name)
    opts = MetricOptions(G=ImageSetGenerator(train, "the training set"), dataset=reference,
                         batch_size=batch_size, cache_dir=cache_dir, weights_dir=weights_dir)
    value = float(next(iter(fn(dataclasses.replace(opts, num_samples=len(train))).values())))
    if cacheable:
        atomic_write_bytes(path, json.dumps({**key, "value": value}).encode())
    return value


# ---------------------------------------------------------------------------------- picture


def plot_dynamics(history: list[list[float]], t_history: list[list[float]], path: Path,
                  floors: dict[str, float] | None = None) -> Path:
    """Three panels over kimg: r_d with d_target, r_t, p (T on p's right-hand scale) and the
    augmentation's p; D's logits on training, held-out and generated images with their gap; D's
    mean logit of the training reals per t bucket."""
    from dgan.callbacks.diffusion_diagnostics import _figure, _save

    plt = _figure()
    col = {name: [row[i] for row in history] for i, name in enumerate(COLUMNS)}
    kimg = col["kimg"]
    fig, (ax_r, ax_logit, ax_t) = plt.subplots(3, 1, figsize=(8, 10), dpi=100, sharex=True)

    def has(key: str) -> bool:
        return any(_finite(v) for v in col[key])

    if has("r_d"):
        ax_r.plot(kimg, col["r_d"], "o-", ms=3, color="tab:red", label="r_d (diffused reals)")
    if has("d_target"):
        ax_r.plot(kimg, col["d_target"], "--", color="tab:red", lw=0.8, label="d_target")
    ax_r.plot(kimg, col["r_t"], "o-", ms=3, color="tab:purple", label="r_t (clean reals)")
    if has("p"):
        ax_r.plot(kimg, col["p"], "-", color="tab:blue", label="p")
        points = [(p, T) for p, T in zip(col["p"], col["T"], strict=True) if _finite(p)]
        _t_scale(ax_r, points)
    if has("augment_p"):
        ax_r.plot(kimg, col["augment_p"], "--", color="tab:green", label="augment p")
    ax_r.axhline(0, color="gray", lw=0.6)
    ax_r.set_ylabel("r_d, r_t, p, augment p")
    ax_r.legend(fontsize=7, loc="best")
    ax_r.set_title("overfitting heuristics and the chain")

    for key, style in (("logit_train", "o-"), ("logit_heldout", "s-"), ("logit_fake", "^-")):
        if has(key):
            ax_logit.plot(kimg, col[key], style, ms=3, label=key.removeprefix("logit_"))
    if has("gap"):
        ax_logit.plot(kimg, col["gap"], "k-", lw=2, label="gap = train - held-out")
    ax_logit.axhline(0, color="gray", lw=0.6)
    ax_logit.set_ylabel("mean D logit (eval, t = 0)")
    ax_logit.legend(fontsize=7, loc="best")
    title = "D on training, held-out and generated images"
    if floors:
        title += " (FID floor: " + ", ".join(f"{k} {v:.3g}" for k, v in floors.items()) + ")"
    ax_logit.set_title(title, fontsize=9)

    _t_heat_map(fig, ax_t, t_history)
    ax_t.set_xlabel("kimg")
    fig.tight_layout()
    return _save(fig, path)


def _t_scale(ax: Any, points: list[tuple[float, float]]) -> None:
    """T as a right-hand scale of p: T is affine in p, fitted from two distinct logged points."""
    pairs = dict(points)
    if len(pairs) < 2:
        return
    (p0, T0), (p1, T1) = min(pairs.items()), max(pairs.items())
    slope = (T1 - T0) / (p1 - p0)
    ax_T = ax.secondary_yaxis("right", functions=(lambda p: T0 + (p - p0) * slope,
                                                  lambda T: p0 + (T - T0) / slope))
    ax_T.set_ylabel("T (p's scale)", color="tab:blue")


def _t_heat_map(fig: Any, ax: Any, t_history: list[list[float]]) -> None:
    """Each tick a column over the kimg since the previous one (what D learnt there), its
    cells the t buckets D was scored at."""
    if not t_history:
        return
    ticks = sorted({row[0] for row in t_history})
    step = min((b - a for a, b in zip(ticks[:-1], ticks[1:], strict=True)), default=0.0)
    starts = dict(zip(ticks[1:], ticks[:-1], strict=True))
    values = [row[3] for row in t_history]
    limit = max(abs(v) for v in values) or 1.0
    mesh = None
    for kimg in ticks:
        rows = sorted((row for row in t_history if row[0] == kimg), key=lambda row: row[1])
        edges = [rows[0][1] - 0.5] + [row[2] + 0.5 for row in rows]
        first = max(kimg - step, 0.0) if step > 0 else 0.0
        x = [starts.get(kimg, first), kimg]
        if x[1] <= x[0]:
            continue  # a single tick at kimg 0 has no width to draw
        mesh = ax.pcolormesh(x, edges, [[row[3]] for row in rows], cmap="coolwarm",
                             vmin=-limit, vmax=limit, shading="flat")
    ax.set_ylabel("t (D's input)")
    ax.set_title("D's mean logit of the training reals per t bucket (the t the chain reaches)",
                 fontsize=9)
    if mesh is not None:
        # In an inset right of the panel: taking room from it would misalign the shared kimg axis.
        fig.colorbar(mesh, cax=ax.inset_axes(COLORBAR_BOX), label="mean D logit")
