"""ds-parrots-eval on lm-eval tasks: the same scores from 1 process and from 2 gloo ranks (lm-eval's
rank / world_size protocol), and from the run directory, the consolidated file and the export-hf folder of
one pre-training run."""

import json
import subprocess
import sys

import pytest

from eval_bench_files import write_bench
from helpers import REPO, cpu_env, launch_cmd
from text_corpus import english_lines, train_tiny

pytestmark = [pytest.mark.slow, pytest.mark.multirank]
EVAL_CLI = str(REPO / "eval" / "cli.py")
TASKS = "arc_easy,hellaswag,piqa,winogrande"


def _cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", *map(str, args)],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    tok = train_tiny(root)
    (root / "c.txt").write_text("\n".join(english_lines(200, seed=1)) + "\n")
    _cli("prepare", "--input", root / "c.txt", "--tokenizer", tok.path, "--output", root / "data" / "a")
    (root / "mix.json").write_text(
        json.dumps({"name": "m", "sources": [{"name": "a", "path": "data/a", "weight": 1.0}]})
    )
    _cli(
        "train",
        "pretrain",
        "--preset",
        "tiny-moe",
        "--data.mixture",
        root / "mix.json",
        "--data.data-root",
        root,
        "--data.tokenizer",
        tok.path,
        "--data.seq-len",
        "64",
        "--data.val-sequences",
        "1",
        "--train.steps",
        "3",
        "--train.global-batch",
        "4",
        "--train.micro-batch",
        "4",
        "--train.out-dir",
        root / "runs",
        "--train.run-name",
        "r",
        "--train.no-progress",
    )
    run_dir = root / "runs" / "r"
    _cli("consolidate", run_dir, "--out", root / "m.safetensors")
    _cli("export-hf", run_dir, "--out", root / "hf")
    return root, run_dir, write_bench(root / "bench", n=7)


def evaluate(checkpoint, out, nproc=1):
    # Batch size 1: a request's log-likelihood never depends on which others share its batch (padded batches
    # round differently in the last bits, and a barely trained model's choices are near ties).
    args = [
        str(checkpoint),
        "--tasks",
        TASKS,
        "--bench-dir",
        str(out.parent.parent / "bench"),
        "--few-shot",
        "1",
        "--batch-size",
        "1",
        "--bootstrap-iters",
        "0",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.run(
        launch_cmd(EVAL_CLI, args, nproc),
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def _scores(result):
    return {name: t["metrics"] for name, t in result["tasks"].items()}


def test_one_process_two_ranks_and_every_checkpoint_form_score_the_same(run, tmp_path):
    root, run_dir, _ = run
    (root / "out").mkdir(exist_ok=True)
    one = evaluate(run_dir, root / "out" / "one.json")
    assert one["kind"] == "benchmarks" and one["world_size"] == 1 and one["context_prefix"] == "none"
    assert set(one["categories"]) == {"commonsense"} and one["params"]["total"] > one["params"]["active"]
    assert one["lm_eval"]["n-shot"]["piqa"] == 1 and one["tasks"]["piqa"]["n"] == 7
    two = evaluate(run_dir, root / "out" / "two.json", nproc=2)
    assert two["world_size"] == 2
    assert _scores(two) == _scores(one)
    for form, path in [("consolidated", root / "m.safetensors"), ("hf", root / "hf")]:
        assert _scores(evaluate(path, root / "out" / f"{form}.json")) == _scores(one), form
