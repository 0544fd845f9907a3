"""At which noise level does D tell real from fake? D's logits and accuracy per bucket of t.

Every ``every_kimg`` the callback takes a held batch of reals and G's samples from fixed
latents, diffuses both at t drawn from each of ``num_buckets`` equal buckets of [1, T] (plus the
clean bucket t = 0), and scores them with D under no_grad. It runs on rank 0 with its own random
generator, so training (its random streams and its hot path) is untouched. Each evaluation is
appended to ``diagnostics/d_by_t.csv``, drawn to ``diagnostics/d_by_t_kimgKIMG.png`` and sent to
the loggers as an image and a table. The p and T of the adaptive diffusion are sampled every few
steps (device tensors, read back only at evaluation time) and written to
``diagnostics/p_T.csv``; the picture of p and T over the run is ``diagnostics/dynamics.png``
(:mod:`dgan.callbacks.overfitting`), beside r_d, r_t and D's logits. With each evaluation the
cosines of D's conditioning head (how far apart it keeps the classes and the timesteps) go to
``diagnostics/conditioning.csv`` (:mod:`dgan.callbacks.conditioning_report`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dgan.callbacks.cadence import EveryKimg
from dgan.callbacks.conditioning_report import (
    CONDITIONING_COLUMNS,
    CONDITIONING_FILE,
    conditioning_rows,
)
from dgan.files.atomic import atomic_write_bytes
from dgan.files.run_files import D_BY_T_TABLE, DIAGNOSTICS_DIR
from dgan.tracking.records import log_image_file, log_rows

HISTORY_FILE = "p_T.csv"
COLUMNS = ["kimg", "T", "bucket", "t_lo", "t_hi", "real_logit", "fake_logit", "real_acc",
           "fake_acc", "acc"]
HISTORY_COLUMNS = ["kimg", "p", "T"]
CHANCE = 0.5  # accuracy of a D that cannot tell real from fake


def t_buckets(T: int, num_buckets: int) -> list[tuple[int, int]]:
    """The clean bucket (0, 0), then up to ``num_buckets`` equal, non-empty ranges of [1, T].

    Args:
        T: the current chain length.
        num_buckets: number of ranges [1, T] is cut into (fewer when T is smaller).
    """
    edges = [round(T * i / num_buckets) for i in range(num_buckets + 1)]
    buckets = [(0, 0)]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            buckets.append((lo + 1, hi))
    return buckets


class DiffusionDiagnostics(L.Callback):
    """D's real and fake logits and accuracy per bucket of t, and the history of p and T.

    Args:
        run_dir: the run directory (files go to ``<run_dir>/diagnostics``).
        every_kimg: evaluation period in thousands of images (0: only at the end).
        num_samples: reals and fakes scored per bucket.
        num_buckets: buckets of [1, T] besides the clean one.
        history_every_n_steps: period of the p/T samples in steps (None: the trainer's
            ``log_every_n_steps``).
        seed: seed of the held reals, the latents, the t values and the noise.
    """

    def __init__(self, run_dir: str | Path, every_kimg: float = 50.0, num_samples: int = 64,
                 num_buckets: int = 10, history_every_n_steps: int | None = None,
                 seed: int = 0) -> None:
        for key, value in (("num_samples", num_samples), ("num_buckets", num_buckets)):
            if value < 1:
                raise ValueError(f"{key}={value} must be an integer >= 1")
        self.out_dir = Path(run_dir) / DIAGNOSTICS_DIR
        self.num_samples = int(num_samples)
        self.num_buckets = int(num_buckets)
        self.history_every_n_steps = history_every_n_steps
        self.seed = int(seed)
        self.cadence = EveryKimg(every_kimg)
        self.history: list[list[float]] = []  # rows of (kimg, p, T), read back
        self._pending_kimg: list[float] = []
        self._pending: list[torch.Tensor] = []  # stacked (p, T) on the device, not read yet
        self._final: tuple[float, Any] | None = None  # (kimg, diffusion) of the last step
        self.last_rows: list[list[Any]] = []

    # ------------------------------------------------------------------ hooks

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        diffusion = pl_module.diffusion
        period = self.history_every_n_steps or max(trainer.log_every_n_steps, 1)
        if diffusion is not None and trainer.should_stop:
            # The last step's point, read when the history is next flushed (by then the
            # adaptive update of this step, a later callback, has moved p in place): the final
            # checkpoint, written before the end-of-training evaluation, must hold it, or a
            # run resumed from it to train longer loses it.
            self._final = (pl_module.kimg, diffusion)
        elif diffusion is not None and pl_module.cur_step % period == 0:
            self._pending_kimg.append(pl_module.kimg)
            self._pending.append(torch.stack([diffusion.p.detach().float(),
                                              diffusion.T.detach().float()]))
        if self.cadence.due(pl_module.kimg, trainer.should_stop):
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.evaluate(trainer, pl_module)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[list[Any]]:
        """Score D per t bucket, write the files and log them; returns the table rows."""
        kimg = pl_module.kimg
        self._flush_history()
        diffusion = pl_module.diffusion
        if diffusion is not None and not (self.history and self.history[-1][0] == kimg):
            self.history.append([kimg, float(diffusion.p), float(diffusion.T)])
        rows = self.score(trainer.datamodule.dataset, pl_module)
        self.last_rows = rows
        self._append_csv(self.out_dir / D_BY_T_TABLE, COLUMNS, rows)
        plot = _plot_buckets(rows, self.out_dir / f"d_by_t_kimg{kimg:010.3f}.png", kimg)
        log_image_file(trainer, f"{DIAGNOSTICS_DIR}/d_by_t", plot, kimg, f"kimg {kimg:.1f}")
        log_rows(trainer, f"{DIAGNOSTICS_DIR}/d_by_t_table", COLUMNS, rows, kimg)
        cosines = conditioning_rows(pl_module.D, kimg)
        if cosines:
            self._append_csv(self.out_dir / CONDITIONING_FILE, CONDITIONING_COLUMNS, cosines)
            log_rows(trainer, f"{DIAGNOSTICS_DIR}/conditioning", CONDITIONING_COLUMNS, cosines,
                     kimg)
        if self.history:
            self._write_history()
        return rows

    def score(self, dataset: Any, pl_module: L.LightningModule) -> list[list[Any]]:
        """The table rows: one per t bucket of the current T (only t = 0 without diffusion)."""
        device = pl_module.device
        gen = torch.Generator().manual_seed(self.seed)
        n = min(self.num_samples, len(dataset))
        idx = torch.randperm(len(dataset), generator=gen)[:n].tolist()
        items = [dataset[i] for i in idx]
        real = torch.stack([x for x, _ in items]).to(device).float()
        c = torch.stack([torch.as_tensor(ci) for _, ci in items]).to(device).float()
        z = torch.randn(n, pl_module.G.z_dim, generator=gen).to(device)
        # const noise: G's per-layer noise would otherwise draw from the global random stream.
        fake = pl_module.G(z, c, noise_mode="const").float()
        diffusion = pl_module.diffusion
        T = int(diffusion.T) if diffusion is not None else 0
        kimg = pl_module.kimg
        rows = []
        for lo, hi in t_buckets(T, self.num_buckets):
            t = torch.randint(lo, hi + 1, (n,), generator=gen).to(device)
            if diffusion is None:
                real_logits = pl_module.D(real, c, None)
                fake_logits = pl_module.D(fake, c, None)
            else:
                real_logits = pl_module.D(self._diffuse(diffusion, real, t, gen), c, t)
                fake_logits = pl_module.D(self._diffuse(diffusion, fake, t, gen), c, t)
            real_logits, fake_logits = real_logits.float().flatten(), fake_logits.float().flatten()
            real_acc = (real_logits > 0).float().mean().item()
            fake_acc = (fake_logits < 0).float().mean().item()
            rows.append([round(kimg, 3), T, f"{lo}-{hi}" if hi > lo else str(lo), lo, hi,
                         real_logits.mean().item(), fake_logits.mean().item(), real_acc,
                         fake_acc, (real_acc + fake_acc) / 2])
        return rows

    @staticmethod
    def _diffuse(diffusion: Any, x: torch.Tensor, t: torch.Tensor,
                 gen: torch.Generator) -> torch.Tensor:
        # Own noise, same law as the diffusion's: its generator drives training and is left alone.
        if diffusion.noise_type == "gaussian":
            noise = torch.randn(x.shape, generator=gen)
        else:
            noise = torch.randint(2, x.shape, generator=gen).float() * 2 - 1
        return diffusion.q_sample(x, t, (noise * diffusion.noise_std).to(x))

    # ------------------------------------------------------------------ files

    def _flush_history(self) -> None:
        if self._pending:
            values = torch.stack(self._pending).cpu().tolist()  # the one read-back
            self.history.extend([k, p, T] for k, (p, T) in zip(self._pending_kimg, values,
                                                               strict=True))
        self._pending, self._pending_kimg = [], []
        if self._final is not None:
            kimg, diffusion = self._final
            self.history.append([kimg, float(diffusion.p), float(diffusion.T)])
            self._final = None

    def _write_history(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(HISTORY_COLUMNS)
        writer.writerows(self.history)
        atomic_write_bytes(self.out_dir / HISTORY_FILE, buffer.getvalue().encode())

    @staticmethod
    def _append_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(columns)
            writer.writerows(rows)

    def state_dict(self) -> dict[str, Any]:
        self._flush_history()
        return {**self.cadence.state_dict(), "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.cadence.load_state_dict(state_dict)
        self.history = [list(row) for row in state_dict["history"]]


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    _figure().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _plot_buckets(rows: list[list[Any]], path: Path, kimg: float) -> Path:
    plt = _figure()
    col = {name: i for i, name in enumerate(COLUMNS)}
    labels = [row[col["bucket"]] for row in rows]
    x = list(range(len(rows)))
    fig, (ax_logit, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    ax_logit.plot(x, [r[col["real_logit"]] for r in rows], "o-", label="real")
    ax_logit.plot(x, [r[col["fake_logit"]] for r in rows], "s-", label="fake")
    ax_logit.axhline(0, color="gray", lw=0.8)
    ax_logit.set_ylabel("mean D logit")
    for key, marker in (("real_acc", "o-"), ("fake_acc", "s-"), ("acc", "k^-")):
        ax_acc.plot(x, [r[col[key]] for r in rows], marker, label=key)
    ax_acc.axhline(CHANCE, color="gray", lw=0.8, ls="--")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_ylabel("D accuracy")
    for ax in (ax_logit, ax_acc):
        ax.set_xticks(x, labels, rotation=45, ha="right")
        ax.set_xlabel("t bucket")
        ax.legend()
    T = rows[0][col["T"]] if rows else 0
    fig.suptitle(f"D per noise level, kimg {kimg:.1f}, T = {T}")
    return _save(fig, path)

