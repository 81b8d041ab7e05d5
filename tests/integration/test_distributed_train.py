"""2 real CPU ranks through the deepspeed launcher: each MoE backend / ZeRO stage trains, the loss
falls, experts are sharded, and resuming from a checkpoint reproduces the uninterrupted losses."""

import pytest

from helpers import results, resume_from, run_train, shm_buffers

pytestmark = [pytest.mark.slow, pytest.mark.multirank]

COMMON = [
    "--task.book-size",
    "64",
    "--task.num-queries",
    "16",
    "--train.steps",
    "8",
    "--train.global-batch",
    "16",
    "--train.micro-batch",
    "4",
    "--train.log-every",
    "1",
    "--train.save-every",
    "4",
    "--train.no-progress",
    "--optim.lr",
    "3e-3",
    "--optim.warmup-frac",
    "0.0",
    "--train.max-eval",
    "8",
]

# AutoEP with ZeRO-3 and ep 2 is trained, killed and resumed in test_reliability.py.
CASES = {
    "native-zero2-ep2": [
        "--preset",
        "tiny-moe",
        "--moe.backend",
        "native",
        "--moe.ep-size",
        "2",
        "--train.zero-stage",
        "2",
    ],
    "dense-zero3": ["--preset", "tiny-dense", "--train.zero-stage", "3"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_train_shard_experts_and_resume_exactly(case, tmp_path):
    args = ["phonebook", *CASES[case], *COMMON, "--train.out-dir", str(tmp_path), "--train.run-name", "run"]
    run_dir = tmp_path / "run"
    shm_before = shm_buffers()
    proc = run_train(args, nproc=2)
    assert "CPU allocator (--train.cpu-allocator keep): glibc freed memory kept" in proc.stdout
    first = results(run_dir)
    losses = [h["loss"] for h in first["loss_history"]]
    assert [h["step"] for h in first["loss_history"]] == list(range(1, 9))
    assert losses[-1] < losses[0] - 0.3, losses

    layout = first["layout"]
    assert layout["world_size"] == 2
    if case == "dense-zero3":
        assert layout["local_experts_per_rank"] == [None, None]
    else:
        assert layout["local_experts_per_rank"] == [4, 4]  # 8 experts, half on each rank

    # Interrupted after the step-4 checkpoint: point `latest` back at it and resume.
    resumed = resume_from(run_dir, args, 4, nproc=2)
    assert [h["step"] for h in resumed["loss_history"]] == [5, 6, 7, 8]
    for a, b in zip(resumed["loss_history"], first["loss_history"][4:]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
        if "aux_loss" in b:
            assert a["aux_loss"] == pytest.approx(b["aux_loss"], rel=1e-6)

    # DeepSpeed's CPU allreduce leaves a ~69 MB /dev/shm segment per rank; our shutdown removes it.
    assert shm_buffers() <= shm_before
