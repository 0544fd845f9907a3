"""When p moves during training: the one controller of an adaptive probability.

It drives the p of the object it is given: the diffusion's (and so the chain length T:
Diffusion-GAN's adaptive update), or ADA's augmentation (StyleGAN2-ADA's heuristic, in a run
without the diffusion, and InsGen's). Every ``interval`` steps, the sign statistic of the reals
D scored since the last update (r_d on diffused reals, r_t on clean ones), reduced over all
ranks, moves p by the rule of :func:`dgan.diffusion.adaptive.adjust_p`. Every rank does the
same arithmetic on the same reduced numbers, so p agrees everywhere.

Given another object to ``follow`` instead, it copies that object's p, capped at ``ada_maxp``,
before every step: ADA's p under the diffusion (Diffusion-GAN's ``--aug ada``), which only
changes at the diffusion's updates, so this is the reference's rule of setting it at each T
update.

The records of every update are held on the device until the trainer's next logging step: a
record sent at once would cost a host sync (on GPU) and a pass through Lightning's logging
(about a toy step's time) at every update.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from dgan.core.rank_state import gather_to_rank0, rank_and_world
from dgan.diffusion.adaptive import adjust_p
from dgan.tracking.records import DeferredRecords, iteration, write_scalars

SYNC_CHECK_ENV = "DGAN_CHECK_SYNC_DIR"


@dataclass(frozen=True)
class Driven:
    """How the run names what a controller drives, in its records and checkpoints."""

    # Logged per update: p, then T where the driven object has one, then the sign statistic.
    record_keys: tuple[str, ...]
    progress_p: str  # p's name in the progress bar
    state_key: str  # the controller's key in a checkpoint's callback states


# Keyed by the ``drives`` argument. The state keys are the class names the two controllers had
# before they were one class, so that the checkpoints they wrote resume with their window.
DRIVES: dict[str, Driven] = {
    "diffusion": Driven(("diffusion/p", "diffusion/T", "diffusion/r_d"), "p",
                        "AdaptiveDiffusion"),
    "augment": Driven(("augment/p", "augment/r_t"), "ada_p", "AugmentProbability"),
}


class AdaptiveProbability(DeferredRecords, L.Callback):
    """Moves ``driven.p`` on D's sign statistic of the reals, or makes it follow ``follow.p``.

    Owned by the training module, whose ``configure_callbacks`` returns it (one per adapted
    object: Lightning would replace a trainer callback of the same class).

    Args:
        driven: the object whose p moves (``p`` and ``set_p``; a ``T`` is logged too).
        drives: what ``driven`` is, one of ``DRIVES``: it names the records and the state key.
        follow: an object whose p ``driven`` copies, capped at ``ada_maxp``, instead of
            adapting its own (ADA under the diffusion); None adapts.
        ada_maxp: the cap of the followed p.
        d_target: target of the sign statistic E[sign(D(real))]; above it p grows.
        ada_kimg: thousands of images over which p may move from 0 to 1.
        interval: training steps between two updates.
    """

    def __init__(self, driven: nn.Module, drives: str = "diffusion",
                 follow: nn.Module | None = None, ada_maxp: float = 1.0,
                 d_target: float = 0.6, ada_kimg: float = 100.0, interval: int = 4) -> None:
        for ok, key, value, valid in (
            (drives in DRIVES, "drives", drives, f"one of {sorted(DRIVES)}"),
            (0 <= ada_maxp <= 1, "ada_maxp", ada_maxp, "a number in [0, 1]"),
            (0 <= d_target <= 1, "d_target", d_target, "a number in [0, 1]"),
            (ada_kimg > 0, "ada_kimg", ada_kimg, "a number > 0"),
            (interval >= 1, "interval", interval, "an integer >= 1"),
        ):
            if not ok:
                raise ValueError(f"{key}={value!r} is not valid; expected {valid}")
        self.driven = driven
        self.names = DRIVES[drives]
        self.follow = follow
        self.ada_maxp = float(ada_maxp)
        self.d_target = float(d_target)
        self.ada_kimg = float(ada_kimg)
        self.interval = int(interval)
        self._signs: torch.Tensor | None = None
        self._count: torch.Tensor | None = None
        self._steps = 0
        self.last_r_d: torch.Tensor | None = None
        # (kimg, global step, device tensor of the record keys) per update not yet logged
        self._records: list[tuple[float, int, torch.Tensor]] = []
        # Debug mode for DDP tests: with $DGAN_CHECK_SYNC_DIR set, every update all-gathers p
        # and T, asserts they agree on every rank and logs them there (one file per rank).
        self.sync_check_dir: str | None = os.environ.get(SYNC_CHECK_ENV) or None

    @property
    def state_key(self) -> str:
        return self.names.state_key

    def _values(self, r_d: torch.Tensor) -> torch.Tensor:
        """The record of one update, on the device."""
        values = [self.driven.p.float()]
        if hasattr(self.driven, "T"):
            values.append(self.driven.T.float())
        return torch.stack([*values, r_d.float()])

    def _progress(self) -> dict[str, torch.Tensor]:
        """What the progress bar shows of the driven object."""
        shown = {self.names.progress_p: self.driven.p}
        if hasattr(self.driven, "T"):
            shown["T"] = self.driven.T.float()
        return shown

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if self.follow is not None:
            self.driven.set_p(self.follow.p.clamp(max=self.ada_maxp))  # on the device: no sync

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.follow is not None or not outputs:
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
            pl_module.log_dict(self._progress(), prog_bar=True, logger=False,
                               on_step=True, on_epoch=False)

    def _update(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every rank joins the reduction; the update itself is then identical everywhere.
        totals = torch.stack([self._signs, self._count])
        totals = trainer.strategy.reduce(totals, reduce_op="sum")
        r_d = totals[0] / totals[1].clamp(min=1)
        adjust_p(self.driven, r_d, self.d_target, pl_module.batch_size * self._steps,
                 self.ada_kimg)
        self.last_r_d = r_d
        self._signs = self._count = None
        self._steps = 0
        if self.sync_check_dir is not None and hasattr(self.driven, "T"):
            self._check_sync(trainer, pl_module)
        self._records.append((pl_module.kimg, iteration(trainer), self._values(r_d)))

    def flush_records(self, trainer: L.Trainer) -> None:
        """Log the held records (one host copy for all of them)."""
        records, self._records = self._records, []
        if not records or not trainer.is_global_zero:
            return
        rows = torch.stack([values for _, _, values in records]).cpu().tolist()
        for (kimg, step, _), row in zip(records, rows, strict=True):
            write_scalars(trainer, dict(zip(self.names.record_keys, row, strict=True)), kimg,
                          step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush_records(trainer)

    def _check_sync(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Debug mode: all-gather p and T, fail unless every rank has the same, log them."""
        local = torch.stack([self.driven.p.float(), self.driven.T.float()])
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
