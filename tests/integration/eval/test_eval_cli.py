"""ds-parrots-eval on a checkpoint that 2 ranks trained (ZeRO-3, AutoEP, experts split over the ranks):
scored offline on 1 process, on 2 ranks, and from the consolidated file, it reports what training reported."""

import json
import subprocess
import sys

import pytest

from helpers import REPO, cpu_env, launch_cmd, results, run_train

pytestmark = [pytest.mark.slow, pytest.mark.multirank]

EVAL_CLI = str(REPO / "eval" / "cli.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_train(
        [
            "phonebook",
            "--preset",
            "tiny-moe",
            "--moe.ep-size",
            "2",
            "--train.zero-stage",
            "3",
            "--task.book-size",
            "60",
            "--train.steps",
            "200",
            "--train.global-batch",
            "30",
            "--optim.lr",
            "3e-3",
            "--optim.warmup-frac",
            "0.05",
            "--train.out-dir",
            str(out),
            "--train.run-name",
            "pb",
            "--train.no-progress",
        ],
        nproc=2,
    )
    return out / "pb"


def evaluate(*args, nproc=1):
    return subprocess.run(
        launch_cmd(EVAL_CLI, list(args), nproc),
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_one_process_scores_what_training_reported(trained, tmp_path):
    proc = evaluate(str(trained), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "r.json").read_text())
    trained_metrics = results(trained)["metrics"]
    assert 0 < trained_metrics["exact_match"]  # a partly trained model: the comparison means something
    assert got["synthetic"]["phonebook"]["metrics"] == trained_metrics
    assert got["params"]["total"] > got["params"]["active"] and got["step"] == 200


def test_two_ranks_and_the_consolidated_file_score_the_same(trained, tmp_path):
    proc = evaluate(str(trained), "--out", str(tmp_path / "r2.json"), nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "r2.json").read_text())
    assert two["world_size"] == 2
    assert two["synthetic"]["phonebook"]["metrics"] == results(trained)["metrics"]
    weights = tmp_path / "pb.safetensors"
    subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", "consolidate", str(trained), "--out", str(weights)],
        cwd=REPO,
        env=cpu_env(),
        check=True,
        capture_output=True,
    )
    proc = evaluate(str(weights), "--limit", "20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads(weights.with_suffix(".eval.json").read_text())
    assert one["synthetic"]["phonebook"]["metrics"]["num_queries"] == 20


def test_bad_requests_are_one_line_errors(trained):
    for args, words in [
        (["--tasks", "shortest-path"], "trained on 'phonebook'"),
        (["--tasks", "gsm8k"], "--bench-dir"),
        (["--few-shot", "x=y", "--tasks", "gsm8k", "--bench-dir", "."], "--few-shot"),
    ]:
        proc = evaluate(str(trained), *args)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
