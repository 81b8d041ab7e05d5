"""A tiny MoE memorizes a small phone-book: the end-to-end proof that training and scoring work."""

import pytest

from helpers import results, run_train

pytestmark = [pytest.mark.slow]


def test_tiny_moe_memorizes_200_entry_phonebook(tmp_path):
    run_train(
        [
            "phonebook",
            "--preset",
            "tiny-moe",
            "--task.book-size",
            "200",
            "--train.steps",
            "700",
            "--train.global-batch",
            "50",
            "--train.micro-batch",
            "50",
            "--optim.lr",
            "3e-3",
            "--optim.warmup-frac",
            "0.05",
            "--train.out-dir",
            str(tmp_path),
            "--train.run-name",
            "mem",
            "--train.no-progress",
            "--train.log-every",
            "50",
        ],
        timeout=900,
    )
    res = results(tmp_path / "mem")
    assert res["metrics"]["num_queries"] == 200
    assert res["metrics"]["exact_match"] >= 0.9, res["summary"]
    assert "PASS" in res["summary"]
    assert res["params"]["total"] > res["params"]["active"]
