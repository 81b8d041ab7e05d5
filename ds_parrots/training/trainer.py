"""The Trainer: owns the step loop of a run; side concerns (logging, throughput, expert load, evaluation,
checkpoints, fault injection in tests) attach as callbacks (training/callbacks/).

Host syncs: a step reads one flag on the host (did any rank see a non-finite loss or skip its update?), in one
collective; everything else a step produces (losses, router losses, expert load, gradient norm) stays on the
device until a log step, where the pending steps' metrics are reduced over ranks in one collective and read at
once. The optimizer step reads one flag of its own, the finiteness of the global gradient norm (DeepSpeed's ZeRO
and bf16 optimizers, and ours without ZeRO): the engine decides on the host whether to count the update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from ds_parrots.config import RunConfig
from ds_parrots.data.task_batches import iterate_steps
from ds_parrots.errors import RunAborted
from ds_parrots.parallel.health import is_collective_failure, lost_ranks, nonfinite_message, rank_loss_message
from ds_parrots.parallel.initialize import ParallelModel
from ds_parrots.training import checkpoint
from ds_parrots.training.callbacks.base import Callback
from ds_parrots.training.logger import RunLogger
from ds_parrots.training.optim import continue_schedule_at
from ds_parrots.training.preemption import PreemptionSignals, RunPreempted
from ds_parrots.training.step import StepOutput, train_step


class Trainer:
    """Train `model` on `batches` (an object with `step_batches(step)` and `epochs_at(step)`, see
    data/task_batches.py and data/sampler.py) to run.train.steps."""

    def __init__(
        self,
        model: ParallelModel,
        batches,
        run: RunConfig,
        run_dir: Path,
        log: RunLogger,
        callbacks: list[Callback],
        init_step: Optional[int] = None,
    ):
        self.model, self.engine, self.batches = model, model.engine, batches
        self.train, self.run_dir, self.log = run.train, Path(run_dir), log
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self.init_step = init_step
        """Step of the --train.init-from checkpoint whose weights the model started from."""
        self.step = self.start = 0
        self.history: list[dict] = []
        """One entry per step trained: {"step", "loss", ["aux_loss", "z_loss",] "lr"[, "nonfinite"]}."""
        self.nonfinite_steps: list[int] = []
        """Steps whose update was skipped for a non-finite loss or gradient (--train.on-nonfinite skip)."""
        self.save_due = False
        """Rank 0's clock says --train.save-every-minutes has passed (agreed by every rank after each step)."""
        self.where = "setup"
        """What the run is doing, for the message when a rank is lost."""
        self._pending: list[tuple[int, torch.Tensor, float, bool]] = []

    def callback_of(self, kind: type) -> Callback:
        return next(cb for cb in self.callbacks if isinstance(cb, kind))

    def callback(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self) -> int:
        """Resume if asked, train to --train.steps, evaluate and save at the end; returns the final step. A lost
        rank, a non-finite step under --train.on-nonfinite stop, or a failed checkpoint write raises RunAborted."""
        try:
            return self._fit()
        except Exception as e:
            if not is_collective_failure(e):
                raise
            timeout = self.train.collective_timeout
            missing = lost_ranks(grace_s=max(10.0, min(timeout, 60.0)))
            message = rank_loss_message(e, self.where, timeout, missing, checkpoint.latest_path(self.run_dir))
            lost = [0] if missing is None else missing  # no store: rank 0, which hosts it, is gone
            survivors = [r for r in range(dist.get_world_size()) if r not in lost]
            raise RunAborted(message, report=bool(survivors) and dist.get_rank() == survivors[0]) from None

    def _fit(self) -> int:
        if self.init_step and not self.train.resume:
            self.step = self.init_step
            continue_schedule_at(self.engine.lr_scheduler, self.step)
        with PreemptionSignals(self.train.preempt_signals) as preemption:
            self.callback("on_start")
            self.start = self.step
            for step_batches in iterate_steps(
                self.batches, self.start, self.train.steps, self.train.num_workers
            ):
                self.where = f"step {self.step + 1}"
                self.callback("pre_step", self.step + 1)
                out = train_step(self.model, step_batches)
                self.step += 1
                bad, preempted, self.save_due = self._any_rank(out, preemption)
                if bad:
                    self._handle_nonfinite(out)
                self._pending.append((self.step, out.metrics, out.lr, bad))
                self.callback("post_train_batch", self.step, out)
                if self.step % self.train.log_every == 0 or self.step == self.train.steps or preempted:
                    self._log(out)
                if preempted and self.step < self.train.steps:
                    self._stop_for_preemption(preemption)
                self.callback("post_step", self.step, out)
            self._flush()
            self.callback("on_end")  # a signal now changes nothing: the run finishes and saves as it would
        return self.step

    def _any_rank(self, out: StepOutput, preemption: PreemptionSignals) -> tuple[bool, bool, bool]:
        """(some rank saw a non-finite loss or skipped its update, some rank was asked to stop, rank 0's clock
        says a timed checkpoint is due), agreed by all ranks in one collective: the one host read of a step."""
        saver = self._checkpointing()
        timed = dist.get_rank() == 0 and saver is not None and saver.due_by_time(self)
        host = torch.tensor(
            [float(out.skipped), float(preemption.received is not None), float(timed)], dtype=torch.float64
        )
        flags = torch.cat(
            [(~torch.isfinite(out.losses)).any().double().reshape(1), host.to(out.losses.device)]
        )
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        nonfinite, skipped, asked, due = flags.tolist()
        return bool(nonfinite or skipped), bool(asked), bool(due)

    def _checkpointing(self):
        from ds_parrots.training.callbacks.checkpointing import Checkpointing

        return next((cb for cb in self.callbacks if isinstance(cb, Checkpointing)), None)

    def _stop_for_preemption(self, preemption: PreemptionSignals) -> None:
        """Save this step's checkpoint on every rank and stop with RunPreempted (exit 75)."""
        saver = self._checkpointing()
        if saver is None:
            raise RunPreempted(
                f"preempted at step {self.step}; no checkpoint is saved by this trainer",
                report=dist.get_rank() == 0,
            )
        tag = saver.save(self, self.step)
        name = preemption.received.name if preemption.received is not None else "a signal on another rank"
        raise RunPreempted(
            f"preempted at step {self.step} ({name}); checkpoint {tag} saved; resume with --train.resume",
            report=dist.get_rank() == 0,
        )

    def _flush(self) -> list[dict]:
        """Mean over ranks of the pending steps' metrics, appended to the history; returns their entries."""
        if not self._pending:
            return []
        stacked = torch.stack([m for _, m, _, _ in self._pending])
        dist.all_reduce(stacked)
        means = (stacked / dist.get_world_size()).tolist()
        keys = ("loss", "aux_loss", "z_loss") if self.model.capture is not None else ("loss",)
        entries = [
            {"step": step, **dict(zip(keys, row)), "lr": lr, **({"nonfinite": True} if bad else {})}
            for (step, _, lr, bad), row in zip(self._pending, means)
        ]
        self._pending.clear()
        self.history.extend(entries)
        return entries

    def _log(self, out: StepOutput) -> None:
        entry = self._flush()[-1]
        scalars = {k: entry[k] for k in ("loss", "aux_loss", "z_loss") if k in entry}
        gn = out.grad_norm
        gn = float(gn) if gn is not None else float("nan")
        scalars.update(
            lr=out.lr,
            grad_norm=gn if gn == gn and abs(gn) != float("inf") else float("nan"),
            epochs=self.batches.epochs_at(self.step - 1),
            nonfinite_steps=len(self.nonfinite_steps),
        )
        self.callback("on_log", self.step, out, scalars)

    def _handle_nonfinite(self, out: StepOutput) -> None:
        """Apply --train.on-nonfinite to a step in which some rank saw a non-finite loss or gradient."""
        reports = [None] * dist.get_world_size()
        dist.all_gather_object(
            reports, {"rank": dist.get_rank(), "micro_batches": out.nonfinite_micro(), "skipped": out.skipped}
        )
        last = checkpoint.latest_path(self.run_dir)
        report = dist.get_rank() == 0
        if not all(r["skipped"] for r in reports):
            # Only a configuration that turns DeepSpeed's overflow check off gets here (bf16 with
            # check_grad_overflow false, or no gradient clipping under ZeRO): the weights are already damaged.
            raise RunAborted(
                f"step {self.step}: a non-finite loss or gradient reached the weights (this DeepSpeed "
                "configuration does not skip such updates: keep bf16.check_grad_overflow true and "
                f"--optim.grad-clip > 0); restart from {last or 'the beginning'} with --train.resume",
                report=report,
            )
        what = nonfinite_message(self.step, reports, self.train.global_batch, last)
        if self.train.on_nonfinite == "stop":
            raise RunAborted(
                f"{what}. To go on: --train.resume with --train.on-nonfinite skip (skips such steps "
                "and counts them), or a lower --optim.lr",
                report=report,
            )
        # DeepSpeed does not advance the schedule on a skipped update; we do, so that the learning rate stays a
        # function of the step (and a resumed run sees the same one).
        self.engine.lr_scheduler.step()
        out.lr = self.engine.get_lr()[0]
        self.nonfinite_steps.append(self.step)
        self.log.info(
            f"warning: {what}; skipped (--train.on-nonfinite skip), {len(self.nonfinite_steps)} so far"
        )
