"""Continue a run at another world size, expert-parallel size, ZeRO stage and MoE backend: 2 ranks train
(AutoEP, ZeRO-3, ep 2), one process continues (native backend, ZeRO-2) from the step-15 checkpoint."""

import json

import pytest

from helpers import results, run_train

pytestmark = [pytest.mark.slow, pytest.mark.multirank]

ARGS = [
    "phonebook",
    "--preset",
    "tiny-moe",
    "--task.book-size",
    "100",
    "--train.global-batch",
    "20",
    "--optim.lr",
    "3e-3",
    "--train.no-progress",
    "--train.log-every",
    "1",
    "--train.steps",
    "30",
]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_train(
        ARGS
        + [
            "--moe.ep-size",
            "2",
            "--train.zero-stage",
            "3",
            "--train.save-every",
            "15",
            "--train.out-dir",
            str(out),
            "--train.run-name",
            "r2",
        ],
        nproc=2,
    )
    return out


def test_one_process_continues_where_two_ranks_stopped(two_rank_run):
    out = two_rank_run
    proc = run_train(
        ARGS
        + [
            "--moe.backend",
            "native",
            "--train.zero-stage",
            "2",
            "--train.out-dir",
            str(out),
            "--train.run-name",
            "r1",
            "--train.init-from",
            str(out / "r2" / "checkpoints" / "step00000015"),
        ]
    )
    # AutoEP ZeRO-3 partitions -> native ZeRO-2 (tests/integration/training/test_reshard_optimizer.py: exactness)
    assert "AdamW state restored" in proc.stdout + proc.stderr
    before, after = results(out / "r2")["loss_history"], results(out / "r1")["loss_history"]
    assert after[0]["step"] == 16 and len(after) == 15
    # Same weights, same data at step 16: the first loss is the one the 2-rank run saw (before any update).
    assert after[0]["loss"] == pytest.approx(before[15]["loss"], abs=1e-5)
    assert json.loads((out / "r1" / "config.json").read_text())["train"]["init_from"].endswith("step00000015")


def test_resume_at_another_world_size_is_refused_before_launch(two_rank_run):
    proc = run_train(
        ARGS
        + [
            "--moe.ep-size",
            "1",
            "--train.zero-stage",
            "3",
            "--train.out-dir",
            str(two_rank_run),
            "--train.run-name",
            "r2",
            "--train.resume",
        ],
        check=False,
    )
    assert proc.returncode == 2 and "saved by 2 ranks" in proc.stderr and "--train.init-from" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_init_from_another_model_is_refused(two_rank_run, tmp_path):
    proc = run_train(
        [
            "phonebook",
            "--preset",
            "tiny-dense",
            "--task.book-size",
            "100",
            "--train.steps",
            "30",
            "--train.out-dir",
            str(tmp_path),
            "--train.init-from",
            str(two_rank_run / "r2"),
        ],
        check=False,
    )
    assert proc.returncode == 2 and "holds another model" in proc.stderr and "num_experts" in proc.stderr
