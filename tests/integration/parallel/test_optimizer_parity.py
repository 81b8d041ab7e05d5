"""The optimizer step (parallel/optimizer.py) against the path it replaced, on real one-rank DeepSpeed engines:
torch's fused AdamW against its single-tensor loop under ZeRO 0, 2 and 3; without ZeRO, our one-pass gradient
norm, clipping and non-finite skip against DeepSpeed's clip_grad_norm_; the reported norm against torch's."""

import json

import pytest
import torch

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.models import build_model
from ds_parrots.parallel import initialize
from ds_parrots.parallel import optimizer as optimizer_module
from ds_parrots.training.step import lm_loss, train_step
from helpers import run_dist_script

MODELS = {
    "dense": ModelConfig(
        vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=16
    ),
    "moe": ModelConfig(
        vocab_size=40,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_dim=32,
        num_experts=4,
        top_k=2,
        max_seq_len=16,
    ),
}
STEPS = 20
# lr high enough that the weights move, clip low enough that most steps clip.
OPTIM = OptimConfig(lr=3e-3, warmup_frac=0.2, grad_clip=0.5)


def batch(step: int):
    """Two batches in turn: the model learns them, so the loss falls."""
    x = torch.randint(0, 40, (4, 9), generator=torch.Generator().manual_seed(step % 2))
    return x[:, :-1], x[:, 1:]


def engine_for(kind: str, backend: str, zero_stage: int):
    cfg = MODELS[kind]
    train = TrainConfig(steps=STEPS, global_batch=4, zero_stage=zero_stage, precision="fp32")
    torch.manual_seed(0)
    return initialize.parallelize(build_model(cfg), cfg, MoEConfig(backend=backend), OPTIM, train)


def train(model, micro_batches: int = 1) -> tuple[list[float], list[float], dict]:
    """(losses, gradient norms, final weights) of STEPS steps."""
    losses, norms = [], []
    for s in range(STEPS):
        out = train_step(model, [batch(s + m) for m in range(micro_batches)]).host()
        losses.append(out["loss"])
        norms.append(out["grad_norm"])
    engine = model.engine
    weights = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    if engine.zero_optimization_stage() < 3:  # ZeRO-3's hooks outlive destroy() (ParallelModel.close)
        model.close()
    return losses, norms, weights


def use_old_path(monkeypatch) -> None:
    """The step as it was: torch's single-tensor AdamW, and without ZeRO DeepSpeed's own clipping
    (engine.clip_fp32_gradients) on a plain torch optimizer."""

    def old_factory(model, model_cfg, optim, train, unwrapped):
        def make(groups):
            from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

            groups = list(groups)
            if model_cfg.is_moe:
                groups = split_params_into_different_moe_groups_for_optimizer(groups)
            hyper = dict(lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps)
            return torch.optim.AdamW(groups, **hyper, foreach=False, fused=False)

        return make

    monkeypatch.setattr(initialize, "optimizer_factory", old_factory)
    monkeypatch.setattr(initialize, "optimizer_unwrapped", lambda train: False)


CASES = [
    ("dense", "autoep", 0),
    ("dense", "autoep", 2),
    ("dense", "autoep", 3),
    ("moe", "autoep", 0),
    ("moe", "autoep", 2),
    ("moe", "autoep", 3),
    ("moe", "native", 0),
    ("moe", "native", 2),
]


@pytest.mark.parametrize("kind,backend,zero_stage", CASES, ids=[f"{k}-{b}-zero{z}" for k, b, z in CASES])
def test_fused_adamw_trains_as_the_single_tensor_loop(process_group, monkeypatch, kind, backend, zero_stage):
    new = engine_for(kind, backend, zero_stage)
    basic = getattr(new.engine, "basic_optimizer", new.engine.optimizer)
    assert all(g["fused"] for g in basic.param_groups)  # the CPU has torch's fused kernel
    new_losses, new_norms, _ = train(new)
    with monkeypatch.context() as m:
        use_old_path(m)
        old = engine_for(kind, backend, zero_stage)
    basic = getattr(old.engine, "basic_optimizer", old.engine.optimizer)
    assert not any(g["fused"] or g["foreach"] for g in basic.param_groups)
    old_losses, _, _ = train(old)
    # The fused kernel rounds some elements of an update differently (1 ulp of a weight); over 20 steps the
    # losses agree to 2e-7 relative (a few fp32 ulps). Most steps clip (the norm exceeds --optim.grad-clip 0.5).
    assert new_losses == pytest.approx(old_losses, rel=1e-6, abs=0)
    assert new_losses[-2] < new_losses[0] - 0.1
    assert sum(n > OPTIM.grad_clip for n in new_norms) > STEPS // 2


@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_without_zero_our_norm_and_clip_are_deepspeeds_bit_for_bit(process_group, monkeypatch, kind):
    # The same AdamW kernel on both sides: all that differs is who computes the norm and clips.
    monkeypatch.setattr(optimizer_module, "adamw_kernel", lambda params: {"foreach": False, "fused": False})
    ours = engine_for(kind, "autoep", 0)
    assert isinstance(ours.engine.optimizer, optimizer_module.SkippableAdamW)
    ours_losses, ours_norms, ours_weights = train(ours)
    use_old_path(monkeypatch)
    deepspeeds = engine_for(kind, "autoep", 0)
    assert type(deepspeeds.engine.optimizer) is torch.optim.AdamW
    ds_losses, ds_norms, ds_weights = train(deepspeeds)
    assert ours_losses == ds_losses
    assert all(torch.equal(w, ds_weights[n]) for n, w in ours_weights.items())
    # DeepSpeed computes that norm without ZeRO but never reports it: engine.get_global_grad_norm() was None.
    assert all(n != n for n in ds_norms) and all(n == n for n in ours_norms)


@pytest.mark.parametrize("zero_stage", [1, 2])
def test_one_rank_all_reduce_trains_as_reduce_scatter(process_group, tmp_path, zero_stage):
    # ds_config gives one dense fp32 rank DeepSpeed's plain all-reduce; a template asking for reduce-scatter,
    # DeepSpeed's default, gets it.
    cfg = MODELS["dense"]
    template = tmp_path / "reduce_scatter.json"
    template.write_text(json.dumps({"zero_optimization": {"stage": zero_stage, "reduce_scatter": True}}))
    runs = {}
    for name, ds_config in (("all_reduce", None), ("reduce_scatter", str(template))):
        train_cfg = TrainConfig(
            steps=STEPS,
            global_batch=8,
            micro_batch=4,
            zero_stage=zero_stage,
            precision="fp32",
            ds_config=ds_config,
        )
        torch.manual_seed(0)
        model = initialize.parallelize(build_model(cfg), cfg, MoEConfig(), OPTIM, train_cfg)
        assert model.engine.optimizer.reduce_scatter == (name == "reduce_scatter")
        runs[name] = train(model, micro_batches=2)[0]  # gradient accumulation too
    assert runs["all_reduce"] == runs["reduce_scatter"]


def grads_after_backward(model, step: int) -> list[torch.Tensor]:
    engine = model.engine
    input_ids, targets = batch(step)
    engine.backward(lm_loss(engine(input_ids), targets))
    if model.capture is not None:
        model.capture.pop()
    return [p.grad for p in engine.module.parameters() if p.grad is not None]


@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_reported_grad_norm_is_torchs_clip_grad_norm(process_group, kind):
    model = engine_for(kind, "autoep", 0)
    train_step(model, [batch(0)])
    grads = grads_after_backward(model, 1)
    copies = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for c, g in zip(copies, grads):
        c.grad = g.clone()
    expected = torch.nn.utils.clip_grad_norm_(copies, OPTIM.grad_clip)
    model.engine.step()
    reported = model.engine.get_global_grad_norm()
    assert float(reported) == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) > OPTIM.grad_clip  # the step clipped
    model.close()


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_a_nonfinite_gradient_on_one_parameter_skips_the_update(process_group, bad):
    model = engine_for("moe", "autoep", 0)
    engine, adamw = model.engine, model.engine.optimizer
    train_step(model, [batch(0)])  # AdamW's moments exist from here on
    weights = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    moments = {id(p): {k: v.clone() for k, v in s.items()} for p, s in adamw.state.items()}
    lr = engine.get_lr()[0]
    grads = grads_after_backward(model, 1)
    grads[len(grads) // 2].view(-1)[3] = bad
    engine.step()
    assert engine.skipped_steps == 1 and adamw.overflow
    assert not torch.isfinite(engine.get_global_grad_norm())
    assert all(torch.equal(p, weights[n]) for n, p in engine.module.named_parameters())
    assert all(torch.equal(v, moments[id(p)][k]) for p, s in adamw.state.items() for k, v in s.items())
    assert engine.get_lr()[0] == lr  # DeepSpeed holds the schedule on a skipped update
    assert all(p.grad is None for p in engine.module.parameters())
    # The next finite step updates again.
    out = train_step(model, [batch(2)])
    assert not out.skipped and engine.skipped_steps == 1
    assert not all(torch.equal(p, weights[n]) for n, p in engine.module.named_parameters())
    model.close()


@pytest.mark.slow
@pytest.mark.multirank
def test_an_inf_on_one_rank_skips_the_update_on_every_rank(tmp_path):
    # Expert gradients are never reduced between expert-parallel ranks: only the norm's all-reduce tells rank 0.
    out = tmp_path / "skip.json"
    run_dist_script("nonfinite_skip.py", [str(out)])
    for rank in json.loads(out.read_text()):
        assert rank["skipped_steps"] == 1 and not rank["norm_finite"], rank
        assert not rank["changed_in_skipped_step"] and rank["changed_after"], rank
