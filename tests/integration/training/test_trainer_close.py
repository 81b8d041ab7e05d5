"""A closed trainer (a real DeepSpeed engine, built in this process on a 1-rank gloo group) is freed."""

import pytest

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.models import build_model

pytestmark = [pytest.mark.slow]

MOE = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, num_experts=8, max_seq_len=8)
DENSE = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, max_seq_len=8)


@pytest.mark.parametrize("backend,zero", [("autoep", 2), ("native", 2)])
def test_closed_trainer_is_freed(backend, zero, process_group):
    """DeepSpeed's hooks keep a dropped engine (and every tensor of it) alive; close() lets it go."""
    import gc
    import weakref

    import torch

    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.training.step import train_step

    moe = MoEConfig(backend=backend)
    torch.manual_seed(0)
    trainer = parallelize(
        build_model(MOE),
        MOE,
        moe,
        OptimConfig(),
        TrainConfig(steps=2, global_batch=2, micro_batch=2, zero_stage=zero, precision="fp32"),
    )
    x = torch.randint(3, 20, (2, 9))
    train_step(trainer, [(x[:, :-1], x[:, 1:])])
    engine, module = weakref.ref(trainer.engine), weakref.ref(trainer.engine.module)
    trainer.close()
    del trainer
    gc.collect()
    assert engine() is None and module() is None


@pytest.mark.parametrize("backend", ["autoep", "native"])
def test_an_moe_engine_builds_again_after_the_process_group_was_shut_down(backend):
    """shutdown() forgets DeepSpeed's cached expert groups with the group they came from: a process that starts a
    new group (benchmarks, notebooks, this test suite) builds MoE engines again instead of failing with
    "Group ... is not registered"."""
    import os

    import torch

    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.parallel.process_group import ensure_process_group, shutdown
    from ds_parrots.training.step import train_step
    from helpers import RENDEZVOUS_VARS

    saved = {name: os.environ.get(name) for name in RENDEZVOUS_VARS}
    try:
        for _ in range(2):
            for name in RENDEZVOUS_VARS:
                os.environ.pop(name, None)
            ensure_process_group()
            model = parallelize(
                build_model(MOE),
                MOE,
                MoEConfig(backend=backend),
                OptimConfig(),
                TrainConfig(steps=1, global_batch=2, micro_batch=2, zero_stage=2, precision="fp32"),
            )
            x = torch.randint(3, 20, (2, 9))
            assert train_step(model, [(x[:, :-1], x[:, 1:])])["loss"] > 0
            model.close()
            shutdown()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
