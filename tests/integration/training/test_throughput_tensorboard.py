"""The throughput scalars (tokens/s, TFLOP/s, MFU) a real training run writes to TensorBoard."""

import pytest

from ds_parrots.config import ModelConfig
from ds_parrots.models.counting import flops_per_token
from helpers import results, run_train

pytestmark = [pytest.mark.slow]


def test_training_run_logs_tokens_tflops_and_mfu_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_train(
        [
            "phonebook",
            "--preset",
            "tiny-dense",
            "--task.book-size",
            "32",
            "--task.num-queries",
            "4",
            "--train.steps",
            "3",
            "--train.global-batch",
            "4",
            "--train.micro-batch",
            "4",
            "--train.log-every",
            "1",
            "--train.peak-tflops",
            "0.5",
            "--train.out-dir",
            str(tmp_path),
            "--train.run-name",
            "mfu",
            "--train.no-progress",
            "--train.zero-stage",
            "0",
        ]
    )
    acc = EventAccumulator(str(tmp_path / "mfu" / "tensorboard")).Reload()
    series = {
        tag: [e.value for e in acc.Scalars(f"train/{tag}")]
        for tag in ("tokens_per_s", "tflops_per_device", "mfu")
    }
    assert [e.step for e in acc.Scalars("train/mfu")] == [1, 2, 3]
    model = ModelConfig(**results(tmp_path / "mfu")["model"])
    for tok, tflops, mfu in zip(*series.values()):
        assert tok > 0
        assert mfu == pytest.approx(tflops / 0.5, rel=1e-5)
        # FLOPs per token implied by the two logged rates, between those of the shortest and longest sequence.
        per_token = tflops * 1e12 / tok
        assert flops_per_token(model, 1) <= per_token * (1 + 1e-5)
        assert per_token <= flops_per_token(model, model.max_seq_len) * (1 + 1e-5)
