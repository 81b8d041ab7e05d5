"""The graph tasks train and score end to end through the CLI (one process, a few steps)."""

import pytest

from helpers import results, run_train

pytestmark = [pytest.mark.slow]


def test_shortest_path_trains_from_disk_cache_and_scores(tmp_path):
    run_train(
        [
            "shortest-path",
            "--preset",
            "tiny-moe",
            "--task.num-train",
            "300",
            "--task.num-test",
            "6",
            "--train.cache-dir",
            str(tmp_path / "cache"),
            "--train.steps",
            "3",
            "--train.global-batch",
            "4",
            "--train.micro-batch",
            "4",
            "--train.out-dir",
            str(tmp_path),
            "--train.run-name",
            "sp",
            "--train.no-progress",
            "--train.log-every",
            "1",
        ]
    )
    res = results(tmp_path / "sp")
    assert set(res["metrics"]) == {"valid_shortest", "exact_match", "num_queries"}
    assert res["metrics"]["num_queries"] == 6
    assert len(res["loss_history"]) == 3
    assert list((tmp_path / "cache").iterdir()), "the cache was not built"


def test_two_hop_dense_trains_and_scores(tmp_path):
    run_train(
        [
            "two-hop",
            "--preset",
            "tiny-dense",
            "--task.num-train",
            "200",
            "--task.num-test",
            "8",
            "--train.steps",
            "3",
            "--train.global-batch",
            "4",
            "--train.micro-batch",
            "2",
            "--train.zero-stage",
            "1",
            "--train.out-dir",
            str(tmp_path),
            "--train.run-name",
            "th",
            "--train.no-progress",
        ]
    )
    res = results(tmp_path / "th")
    assert set(res["metrics"]) == {"accuracy", "num_queries"}
    assert res["metrics"]["num_queries"] == 8
    assert res["params"]["total"] == res["params"]["active"]


def test_tensorboard_has_losses_lr_throughput_and_expert_load(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_train(
        [
            "two-hop",
            "--preset",
            "tiny-moe",
            "--task.num-train",
            "100",
            "--task.num-test",
            "4",
            "--train.steps",
            "2",
            "--train.global-batch",
            "4",
            "--train.micro-batch",
            "4",
            "--train.log-every",
            "1",
            "--train.out-dir",
            str(tmp_path),
            "--train.run-name",
            "tb",
            "--train.no-progress",
        ]
    )
    acc = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in (
        "train/loss",
        "train/aux_loss",
        "train/z_loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "train/expert_load_cv",
        "experts/cv_layer00",
        "experts/cv_layer01",
        "eval/accuracy",
    ):
        assert tag in scalars, tag
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    # No peak FLOP/s for a CPU: achieved TFLOP/s is logged, MFU is not.
    assert "train/tflops_per_device" in scalars and "train/mfu" not in scalars
    hist = acc.Histograms("experts/load_layer00")[-1].histogram_value
    assert len(hist.bucket) == 8 and abs(sum(hist.bucket) - 1.0) < 1e-6  # fraction of tokens per expert
