"""--train.init-from at another world size, expert-parallel size, ZeRO stage or MoE backend restores AdamW's
state: the step after the checkpoint gives the uninterrupted run's loss and, to fp32 tolerance, its weights.

Each source run trains 3 steps uninterrupted and saves at steps 2 and 3; a second run continues from step 2
at the other topology to step 3, and its step-3 checkpoint is compared with the source's. MoE runs turn the
load-balancing loss off: it is computed per rank over that rank's tokens, so 2 ranks and 1 rank optimize
slightly different objectives (the logged LM loss still matches), which would hide what is compared here.
"""

import pytest

from ds_parrots.checkpoints.load import consolidated_state
from helpers import results, run_train

pytestmark = [pytest.mark.slow, pytest.mark.multirank]

COMMON = [
    "phonebook",
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
    "3",
]
DENSE = COMMON + ["--preset", "tiny-dense"]
MOE = COMMON + ["--preset", "tiny-moe", "--moe.aux-loss-coef", "0"]

# fp32 summation order differs between topologies (gradient reduction, partitioned norms): ~1e-8 here, while
# an update without the moments moves weights by ~1e-3 (checked by the reset case below).
WEIGHT_TOL = 1e-6


def train(out, name: str, args: list[str], nproc: int = 1, source=None):
    extra = ["--train.out-dir", str(out), "--train.run-name", name]
    if source is None:
        extra += ["--train.save-every", "2"]
    else:
        extra += ["--train.init-from", str(source / "checkpoints" / "step00000002")]
    proc = run_train(args + extra, nproc=nproc)
    return out / name, proc.stdout + proc.stderr


def max_weight_diff(run_a, run_b) -> float:
    a, _ = consolidated_state(run_a / "checkpoints" / "step00000003")
    b, _ = consolidated_state(run_b / "checkpoints" / "step00000003")
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def assert_continues(source, continued, output: str) -> None:
    assert "AdamW state restored (exp_avg, exp_avg_sq, update count 2)" in output
    before, after = results(source)["loss_history"], results(continued)["loss_history"]
    assert [e["step"] for e in after] == [3]
    assert after[0]["loss"] == pytest.approx(before[2]["loss"], abs=1e-5)
    assert max_weight_diff(source, continued) < WEIGHT_TOL


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("reshard")


@pytest.fixture(scope="module")
def dense_two_ranks(out):
    return train(out, "dense-2rank-z3", DENSE + ["--train.zero-stage", "3"], nproc=2)[0]


@pytest.mark.parametrize("stage", ["3", "0"])
def test_dense_zero3_two_ranks_to_one(out, dense_two_ranks, stage):
    continued, output = train(
        out, f"dense-1rank-z{stage}", DENSE + ["--train.zero-stage", stage], source=dense_two_ranks
    )
    assert_continues(dense_two_ranks, continued, output)


def test_reset_on_purpose_loses_the_moments(out, dense_two_ranks):
    continued, output = train(
        out,
        "dense-1rank-reset",
        DENSE + ["--train.zero-stage", "3", "--train.init-optimizer", "reset"],
        source=dense_two_ranks,
    )
    assert "optimizer state reset (--train.init-optimizer reset" in output
    # Same first loss (same weights), but the update differs by far more than the tolerance above.
    assert results(continued)["loss_history"][0]["loss"] == pytest.approx(
        results(dense_two_ranks)["loss_history"][2]["loss"], abs=1e-5
    )
    assert max_weight_diff(dense_two_ranks, continued) > 100 * WEIGHT_TOL


def test_dense_zero2_one_rank_to_zero3_two_ranks(out):
    source, _ = train(out, "dense-1rank-z2", DENSE + ["--train.zero-stage", "2"])
    continued, output = train(
        out, "dense-2rank-from-1", DENSE + ["--train.zero-stage", "3"], nproc=2, source=source
    )
    assert_continues(source, continued, output)


@pytest.fixture(scope="module")
def autoep_ep2(out):
    return train(out, "moe-autoep-ep2", MOE + ["--train.zero-stage", "3", "--moe.ep-size", "2"], nproc=2)[0]


@pytest.mark.parametrize(
    "name,args",
    [
        ("moe-autoep-1rank-z3", ["--train.zero-stage", "3"]),
        ("moe-native-1rank-z2", ["--train.zero-stage", "2", "--moe.backend", "native"]),
    ],
)
def test_moe_autoep_ep2_to_one_rank(out, autoep_ep2, name, args):
    continued, output = train(out, name, MOE + args, source=autoep_ep2)
    assert_continues(autoep_ep2, continued, output)


def test_a_zero0_checkpoint_resets_and_says_why(out):
    source, _ = train(out, "dense-z0-source", DENSE + ["--train.zero-stage", "0"])
    continued, output = train(out, "dense-from-z0", DENSE + ["--train.zero-stage", "2"], source=source)
    assert "optimizer state reset" in output and "written without ZeRO" in output
    assert results(continued)["loss_history"][0]["step"] == 3


def test_moe_native_ep2_zero2_to_autoep_one_rank(out):
    # ZeRO-2 expert groups partitioned over the expert-data-parallel group, read into AutoEP's stacked experts.
    source, _ = train(
        out,
        "moe-native-ep2",
        MOE + ["--train.zero-stage", "2", "--moe.backend", "native", "--moe.ep-size", "2"],
        nproc=2,
    )
    continued, output = train(out, "moe-autoep-from-native", MOE + ["--train.zero-stage", "3"], source=source)
    assert_continues(source, continued, output)


@pytest.fixture(scope="module")
def moe_one_rank(out):
    return train(out, "moe-autoep-1rank-z2", MOE + ["--train.zero-stage", "2"])[0]


@pytest.mark.parametrize(
    "name,args",
    [
        ("moe-autoep-ep2-from-1", ["--train.zero-stage", "3"]),
        ("moe-native-ep2-from-1", ["--train.zero-stage", "2", "--moe.backend", "native"]),
    ],
)
def test_moe_one_rank_to_ep2(out, moe_one_rank, name, args):
    # Each rank takes its own experts' moments (global experts (rank % ep) * L onwards).
    continued, output = train(out, name, MOE + args + ["--moe.ep-size", "2"], nproc=2, source=moe_one_rank)
    assert_continues(moe_one_rank, continued, output)
