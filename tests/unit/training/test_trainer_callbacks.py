"""The Trainer's loop and its callbacks, on a real one-rank DeepSpeed engine built in this process."""

import dataclasses

import pytest
import torch

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, RunConfig, TrainConfig
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.testing import faults
from ds_parrots.training.callbacks import Callback, Checkpointing, Evaluation, ExpertLoad, Logging, Throughput
from ds_parrots.training.logger import RunLogger
from ds_parrots.training.trainer import Trainer

MODEL = ModelConfig(
    vocab_size=40,
    d_model=32,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    ffn_dim=32,
    num_experts=4,
    top_k=2,
    max_seq_len=16,
)


class Batches:
    """Random token batches, a pure function of the step."""

    def step_batches(self, step):
        x = torch.randint(0, MODEL.vocab_size, (4, 9), generator=torch.Generator().manual_seed(step))
        return [(x[:, :-1], x[:, 1:])]

    def epochs_at(self, step):
        return (step + 1) / 10


class Recorder(Callback):
    order = 95

    def __init__(self):
        self.calls = []
        self.logged = {}

    def on_start(self, trainer):
        self.calls.append(("on_start", trainer.step))

    def pre_step(self, trainer, step):
        self.calls.append(("pre_step", step))

    def post_train_batch(self, trainer, step, out):
        self.calls.append(("post_train_batch", step))

    def post_step(self, trainer, step, out):
        self.calls.append(("post_step", step))

    def on_log(self, trainer, step, out, scalars):
        self.calls.append(("on_log", step))
        self.logged[step] = dict(scalars)

    def on_checkpoint_files_written(self, trainer, step):
        self.calls.append(("files_written", step))

    def on_end(self, trainer):
        self.calls.append(("on_end", trainer.step))


def make_trainer(tmp_path, callbacks, **train):
    train = TrainConfig(
        **{
            "steps": 6,
            "global_batch": 4,
            "zero_stage": 0,
            "log_every": 3,
            "progress": False,
            "out_dir": str(tmp_path),
            **train,
        }
    )
    run = RunConfig(model=MODEL, moe=MoEConfig(), optim=OptimConfig(warmup_frac=0.0), train=train)
    torch.manual_seed(0)
    model = parallelize(build_model(MODEL), MODEL, run.moe, run.optim, run.train)
    log = RunLogger(tmp_path / "tb", False, train.steps, 0, False)
    return Trainer(model, Batches(), run, tmp_path / "run", log, callbacks)


def test_hooks_run_in_order_and_log_every_n_steps(tmp_path, process_group):
    rec, evaluated = Recorder(), []
    load = ExpertLoad()
    trainer = make_trainer(
        tmp_path,
        [
            rec,
            Throughput(None),
            load,
            Evaluation(lambda s: evaluated.append(s) or {"score": float(s)}),
            Checkpointing(),
        ],
        eval_every=4,
        save_every=2,
    )
    assert trainer.fit() == 6
    steps = [c for c in rec.calls if c[0] in ("pre_step", "post_train_batch", "post_step", "on_log")]
    assert steps[:10] == [
        ("pre_step", 1),
        ("post_train_batch", 1),
        ("post_step", 1),
        ("pre_step", 2),
        ("post_train_batch", 2),
        ("post_step", 2),
        ("pre_step", 3),
        ("post_train_batch", 3),
        ("on_log", 3),
        ("post_step", 3),
    ]
    assert rec.calls[0] == ("on_start", 0) and rec.calls[-1] == ("on_end", 6)
    assert sorted(rec.logged) == [3, 6]
    assert evaluated == [4, 6]  # every eval_every steps, and at the end
    # saves at 2 and 4 (save_every) and the final one at 6; each fires the files-written hook
    assert [s for c, s in rec.calls if c == "files_written"] == [2, 4, 6]
    assert trainer.callback_of(Evaluation).metrics == {"score": 6.0}
    scalars = rec.logged[6]
    for key in ("loss", "aux_loss", "z_loss", "lr", "grad_norm", "epochs", "tokens_per_s", "expert_load_cv"):
        assert key in scalars, key
    assert scalars["epochs"] == pytest.approx(0.6)
    assert scalars["tokens_per_s"] > 0
    assert set(load.load) == {0, 1} and float(load.load[0].sum()) == pytest.approx(1.0)
    assert [h["step"] for h in trainer.history] == [1, 2, 3, 4, 5, 6]
    assert scalars["loss"] == trainer.history[-1]["loss"]


def test_history_equals_the_losses_of_the_steps(tmp_path, process_group):
    from ds_parrots.training.step import train_step

    trainer = make_trainer(tmp_path, [], log_every=4)
    trainer.fit()
    # the same model trained step by step, each loss read at once
    again = make_trainer(tmp_path / "again", [], log_every=4)
    direct = [train_step(again.model, Batches().step_batches(s))["loss"] for s in range(6)]
    assert [h["loss"] for h in trainer.history] == direct


def test_a_step_reads_one_value_on_the_host_between_log_steps(tmp_path, process_group, monkeypatch):
    # Step metrics stay on the device: between log steps, the Trainer and the step read only the per-step
    # flags (one .tolist() of one tensor), and the optimizer whether the gradient norm is finite (ZeRO-0: ours,
    # parallel/optimizer.py). Not counted: the expert kernel's per-layer group sizes (parallel/moe_backends.py:
    # grouped SwiGLU splits on the host).
    import sys

    reads = []
    for name in ("item", "tolist", "cpu", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            caller = sys._getframe(1).f_code.co_filename
            if "ds_parrots" in caller:
                reads.append((_name, caller.rsplit("ds_parrots", 1)[1]))
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)

    class Mark(Callback):
        order = 99

        def post_step(self, trainer, step, out):
            reads.append(("step", step))

    trainer = make_trainer(tmp_path, [Mark()], log_every=100, steps=3)
    trainer.fit()
    per_step, current = {}, []
    for r in reads:
        if r[0] == "step":
            per_step[r[1]] = current
            current = []
        else:
            current.append(r)
    ours = {s: [r for r in rs if not r[1].endswith("moe_backends.py")] for s, rs in per_step.items()}
    one_step = [("__bool__", "/parallel/optimizer.py"), ("tolist", "/training/trainer.py")]
    assert ours[1] == one_step
    assert ours[2] == one_step


def test_fault_injection_attaches_as_a_callback(tmp_path, process_group, monkeypatch):
    monkeypatch.setenv(faults.ENV, "nan@2")
    faults._parse.cache_clear()
    callbacks = faults.callbacks_from_env()
    assert [type(c).__name__ for c in callbacks] == ["FaultInjection"]
    trainer = make_trainer(tmp_path, callbacks, on_nonfinite="skip", steps=3)
    trainer.fit()
    assert trainer.nonfinite_steps == [2]
    assert [h.get("nonfinite", False) for h in trainer.history] == [False, True, False]
    assert trainer.history[1]["loss"] != trainer.history[1]["loss"]  # NaN
    assert all(torch.isfinite(p).all() for p in trainer.engine.module.parameters())  # never applied


def test_no_fault_callback_without_the_variable(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    assert faults.callbacks_from_env() == []


def test_logging_callback_writes_tensorboard_scalars(tmp_path, process_group):
    log = RunLogger(tmp_path / "tb", True, 6, 0, False)
    load = ExpertLoad()
    trainer = make_trainer(tmp_path, [load, Logging(log, load)])
    trainer.log = log
    trainer.fit()
    log.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [3, 6]
    assert "train/expert_load_cv" in events.Tags()["scalars"]


def test_resume_continues_the_history(tmp_path, process_group):
    first = make_trainer(tmp_path, [Checkpointing()], save_every=3)
    first.fit()
    full = [h["loss"] for h in first.history]
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step00000003")
    again = make_trainer(tmp_path, [Checkpointing()], resume=True)
    again.fit()
    assert [h["step"] for h in again.history] == [4, 5, 6]
    assert [h["loss"] for h in again.history] == full[3:]


def test_config_sections_are_plain_dataclasses():
    assert dataclasses.is_dataclass(TrainConfig) and dataclasses.is_dataclass(RunConfig)


def test_timed_checkpoints_follow_rank_0s_clock(tmp_path, process_group):
    trainer = make_trainer(tmp_path, [Checkpointing()], save_every_minutes=1e-9, steps=4)
    trainer.fit()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step*")) == [
        f"step{s:08d}" for s in (1, 2, 3, 4)
    ]
    off = make_trainer(tmp_path / "off", [Checkpointing()], save_every_minutes=0, steps=4)
    off.fit()
    assert [p.name for p in (tmp_path / "off" / "run" / "checkpoints").glob("step*")] == ["step00000004"]


@pytest.mark.parametrize("terminal", [False, True])
def test_a_log_file_gets_plain_lines_and_a_terminal_the_bar(tmp_path, process_group, capsys, terminal):
    log = RunLogger(tmp_path / "tb", True, 6, 0, True, terminal=terminal)
    trainer = make_trainer(tmp_path, [Throughput(0.5), Logging(log)])
    trainer.log = log
    trainer.fit()
    log.close()
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("step ")]
    if terminal:
        assert lines == [] and log.bar is not None
        return
    assert [l.split(" | ")[0] for l in lines] == ["step 3/6", "step 6/6"]
    first = dict(part.split(" ", 1) for part in lines[0].split(" | ")[1:] if not part.endswith("tok/s"))
    assert set(first) == {"loss", "aux", "z", "lr", "grad", "mfu", "eta"}
    assert float(first["loss"]) == pytest.approx(trainer.history[2]["loss"], abs=5e-5)
    assert "eta" not in lines[1]  # nothing left at the last step
