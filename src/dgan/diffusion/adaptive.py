"""Where T changes: the adaptive update of the diffusion's p (and so of the chain length T).

Every ``interval`` steps, r_d = E[sign(D logit)] of the diffused reals seen since the last
update (by every phase that scored reals), reduced over all ranks, moves p by
sign(r_d - d_target) * images / (ada_kimg * 1000).
An overfitting D (r_d above target) lengthens the chain; a weak D shortens it. Every rank does
the same arithmetic on the same reduced numbers, so p and T agree everywhere.

p, T and r_d of every update are logged, but held on the device until the trainer's next
logging step: a record sent at once would cost a host sync (on GPU) and a pass through
Lightning's logging (about a toy step's time) at every update.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from dgan.core.rank_state import gather_to_rank0, rank_and_world
from dgan.diffusion.process import Diffusion
from dgan.tracking.records import DeferredRecords, iteration, write_scalars

SYNC_CHECK_ENV = "DGAN_CHECK_SYNC_DIR"


RECORD_KEYS = ("diffusion/p", "diffusion/T", "diffusion/r_d")
IMAGES_PER_KIMG = 1000


@torch.no_grad()
def adjust_p(diffusion: Diffusion | nn.Module, r_d: torch.Tensor | float, d_target: float,
             num_images: int, ada_kimg: float) -> None:
    """One adaptive step: p += sign(r_d - d_target) * num_images / (ada_kimg * 1000).

    Args:
        diffusion: the diffusion whose p (and so T) moves; any module with ``p`` and
            ``set_p`` (ADA's augmentation follows the same rule).
        r_d: E[sign(D logit)] of diffused reals since the last update (tensor, any device).
        d_target: the target of r_d; above it the chain grows.
        num_images: real images shown since the last update, over all ranks.
        ada_kimg: thousands of images over which p may move from 0 to 1.
    """
    r_d = torch.as_tensor(r_d, dtype=torch.float32, device=diffusion.p.device)
    step = num_images / (ada_kimg * IMAGES_PER_KIMG)
    diffusion.set_p(diffusion.p + torch.sign(r_d - d_target) * step)


class AdaptiveDiffusion(DeferredRecords, L.Callback):
    """Updates ``pl_module.diffusion`` from the real logits the loss reports.

    Built from the run's ``adaptive`` config node and owned by the module, whose
    ``configure_callbacks`` returns it. The same overfitting heuristic drives ADA's p in a run
    without diffusion (:class:`dgan.augment.probability.AugmentProbability`): a subclass sets
    ``drives`` to the module attribute it moves.

    Args:
        d_target: target of r_d = E[sign(D(y_real))]; above it the chain grows.
        ada_kimg: thousands of images over which p may move from 0 to 1.
        interval: training steps between two updates.
    """

    def __init__(self, d_target: float = 0.6, ada_kimg: float = 100.0, interval: int = 4
                 ) -> None:
        for ok, key, value, valid in (
            (0 <= d_target <= 1, "d_target", d_target, "a number in [0, 1]"),
            (ada_kimg > 0, "ada_kimg", ada_kimg, "a number > 0"),
            (interval >= 1, "interval", interval, "an integer >= 1"),
        ):
            if not ok:
                raise ValueError(f"{key}={value!r} is not valid; expected {valid}")
        self.d_target = float(d_target)
        self.ada_kimg = float(ada_kimg)
        self.interval = int(interval)
        self._signs: torch.Tensor | None = None
        self._count: torch.Tensor | None = None
        self._steps = 0
        self.last_r_d: torch.Tensor | None = None
        # (kimg, global step, device tensor of RECORD_KEYS) per update not yet logged
        self._records: list[tuple[float, int, torch.Tensor]] = []
        # Debug mode for DDP tests: with $DGAN_CHECK_SYNC_DIR set, every update all-gathers p
        # and T, asserts they agree on every rank and logs them there (one file per rank).
        self.sync_check_dir: str | None = os.environ.get(SYNC_CHECK_ENV) or None

    # The module attribute whose p this callback moves, and the names of its logged records.
    drives = "diffusion"
    record_keys = RECORD_KEYS

    def _values(self, driven: nn.Module, r_d: torch.Tensor) -> torch.Tensor:
        """The record of one update (RECORD_KEYS), on the device."""
        return torch.stack([driven.p.float(), driven.T.float(), r_d.float()])

    def _progress(self, driven: nn.Module) -> dict[str, torch.Tensor]:
        """What the progress bar shows of the driven module."""
        return {"p": driven.p, "T": driven.T.float()}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        driven = getattr(pl_module, self.drives, None)
        if driven is None or not outputs:
            return
        signs = outputs["real_signs"].detach().float()
        count = outputs["real_count"].to(signs.device).float()
        self._signs = signs if self._signs is None else self._signs.to(signs) + signs
        self._count = count if self._count is None else self._count.to(count) + count
        self._steps += 1
        if self._steps >= self.interval:
            self._update(trainer, pl_module)
        if trainer.should_stop or pl_module.cur_step % max(trainer.log_every_n_steps, 1) == 0:
            self.flush_records(trainer)
            pl_module.log_dict(self._progress(driven), prog_bar=True, logger=False,
                               on_step=True, on_epoch=False)

    def _update(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        driven = getattr(pl_module, self.drives)
        # Every rank joins the reduction; the update itself is then identical everywhere.
        totals = torch.stack([self._signs, self._count])
        totals = trainer.strategy.reduce(totals, reduce_op="sum")
        r_d = totals[0] / totals[1].clamp(min=1)
        adjust_p(driven, r_d, self.d_target, pl_module.batch_size * self._steps, self.ada_kimg)
        self.last_r_d = r_d
        self._signs = self._count = None
        self._steps = 0
        if self.sync_check_dir is not None and self.drives == "diffusion":
            self._check_sync(trainer, pl_module)
        self._records.append((pl_module.kimg, iteration(trainer), self._values(driven, r_d)))

    def flush_records(self, trainer: L.Trainer) -> None:
        """Log the held p, T, r_d records (one host copy for all of them)."""
        records, self._records = self._records, []
        if not records or not trainer.is_global_zero:
            return
        rows = torch.stack([values for _, _, values in records]).cpu().tolist()
        for (kimg, step, _), row in zip(records, rows, strict=True):
            write_scalars(trainer, dict(zip(self.record_keys, row, strict=True)), kimg, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush_records(trainer)

    def _check_sync(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Debug mode: all-gather p and T, fail unless every rank has the same, log them."""
        diffusion = pl_module.diffusion
        local = torch.stack([diffusion.p.float(), diffusion.T.float()])
        every = trainer.strategy.all_gather(local).reshape(-1, 2).cpu()
        record = {"step": pl_module.cur_step, "p": float(local[0]), "T": int(local[1]),
                  "all_p": every[:, 0].tolist(), "all_T": every[:, 1].tolist()}
        path = Path(self.sync_check_dir) / f"sync_rank{trainer.global_rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if not bool((every == every[:1]).all()):
            raise RuntimeError(f"p/T differ between ranks at step {pl_module.cur_step}: {record}")

    def state_dict(self) -> dict[str, Any]:
        # The partial sums are each rank's own: gathered so that every rank resumes its own.
        # Lightning calls state_dict on every rank when it saves, so the gather is safe here.
        local = [float(self._signs) if self._signs is not None else 0.0,
                 float(self._count) if self._count is not None else 0.0]
        # The last r_d, which the records of the overfitting callback show until the next update.
        last = None if self.last_r_d is None else float(self.last_r_d)
        return {"steps": self._steps, "per_rank": gather_to_rank0(local), "last_r_d": last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._steps = int(state_dict["steps"])
        last = state_dict.get("last_r_d")
        self.last_r_d = None if last is None else torch.tensor(float(last))
        rank, world = rank_and_world()
        per_rank = state_dict.get("per_rank") or []
        if len(per_rank) != world:
            self._steps = 0  # another world size: restart the window of the next update
            self._signs = self._count = None
            return
        signs, count = per_rank[rank]
        self._signs = torch.tensor(float(signs)) if self._steps else None
        self._count = torch.tensor(float(count)) if self._steps else None
