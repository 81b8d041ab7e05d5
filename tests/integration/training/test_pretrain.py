"""`train.py pretrain` end to end: token files the test writes, a mixture, 2 gloo ranks, resume."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ds_parrots.data.indexed import IndexedWriter
from helpers import REPO, TRAIN, cpu_env, results, resume_from, run_train

pytestmark = [pytest.mark.slow]

VOCAB = 128


def write_corpus(root, name: str, docs: int, lo: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / "data").mkdir(exist_ok=True)
    with IndexedWriter(root / "data" / name, np.uint16) as w:
        for _ in range(docs):
            # A learnable stream: counting runs from a random start, then EOS (id 2).
            start = int(rng.integers(lo, lo + 30))
            w.add_document(np.append(np.arange(start, start + int(rng.integers(4, 20))) % VOCAB, 2))


@pytest.fixture
def corpus(tmp_path):
    write_corpus(tmp_path, "web", 400, 3, 0)
    write_corpus(tmp_path, "math", 200, 60, 1)
    mix = tmp_path / "mix.json"
    mix.write_text(
        json.dumps(
            {
                "name": "toy",
                "sources": [
                    {"name": "web", "path": "data/web", "weight": 0.7},
                    {"name": "math", "path": "data/math", "weight": 0.3},
                ],
            }
        )
    )
    return tmp_path


def pretrain_args(root, *extra):
    return [
        "pretrain",
        "--preset",
        "tiny-moe",
        "--model.vocab-size",
        str(VOCAB),
        "--data.mixture",
        str(root / "mix.json"),
        "--data.data-root",
        str(root),
        "--data.seq-len",
        "32",
        "--data.val-sequences",
        "16",
        "--train.steps",
        "8",
        "--train.global-batch",
        "8",
        "--train.micro-batch",
        "2",
        "--train.log-every",
        "1",
        "--train.save-every",
        "4",
        "--train.eval-every",
        "4",
        "--train.eval-batch",
        "4",
        "--optim.lr",
        "3e-3",
        "--optim.warmup-frac",
        "0",
        "--train.no-progress",
        "--train.out-dir",
        str(root / "runs"),
        "--train.run-name",
        "pt",
        *extra,
    ]


@pytest.mark.multirank
def test_two_ranks_pretrain_moe_zero3_and_resume_exactly(corpus):
    args = pretrain_args(corpus, "--moe.ep-size", "2")
    run_train(args, nproc=2)
    run_dir = corpus / "runs" / "pt"
    first = results(run_dir)
    losses = [h["loss"] for h in first["loss_history"]]
    assert losses[-1] < losses[0] - 0.3, losses
    assert first["layout"]["local_experts_per_rank"] == [4, 4]
    assert first["metrics"]["val_tokens"] == 16 * 32
    assert first["metrics"]["val_ppl"] < VOCAB  # better than uniform
    mix = first["mixture"]
    assert mix["web"]["samples"] + mix["math"]["samples"] == 64
    assert abs(mix["web"]["realized"] - 0.7) <= 2 / 64

    resumed = resume_from(run_dir, args, 4, nproc=2)
    assert [h["step"] for h in resumed["loss_history"]] == [5, 6, 7, 8]
    for a, b in zip(resumed["loss_history"], first["loss_history"][4:]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    assert resumed["metrics"]["val_loss"] == pytest.approx(first["metrics"]["val_loss"], rel=1e-5)


def run_cli(args):
    return subprocess.run(
        [sys.executable, TRAIN, *args], cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "change,message",
    [
        (["--data.mixture", ""], "pretrain needs --data.mixture"),
        (["--data.data-root", "/nonexistent"], "web.idx"),
        (["--data.val-sequences", "100000"], "validation sequences"),
    ],
)
def test_pretrain_bad_input_is_one_line(corpus, change, message):
    proc = run_cli(pretrain_args(corpus) + change)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip() and "real_accelerator" not in l]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (corpus / "runs").exists()


def test_token_ids_beyond_the_model_vocabulary_are_refused(corpus):
    # The files hold ids up to ~90 (uint16 fits any vocabulary here), the model only 64.
    proc = run_cli(pretrain_args(corpus, "--model.vocab-size", "64", "--train.steps", "1"))
    assert proc.returncode == 2
    assert "is >= --model.vocab-size=64" in proc.stderr and "Traceback" not in proc.stderr


def ds_parrots_cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", *args],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_tokenizer_prepare_pretrain_end_to_end(tmp_path):
    from text_corpus import english_lines

    for name, seed in (("web", 0), ("books", 1)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in english_lines(400, seed))
        )
    (tmp_path / "corpus.txt").write_text("\n".join(english_lines(300, 2)) + "\n")
    ds_parrots_cli(
        "tokenizer",
        "train",
        "--input",
        str(tmp_path / "corpus.txt"),
        "--vocab-size",
        "400",
        "--output",
        str(tmp_path / "tok" / "spm"),
    )
    tok = tmp_path / "tok" / "spm.model"
    for name in ("web", "books"):
        out = ds_parrots_cli(
            "prepare",
            "--input",
            str(tmp_path / f"{name}.jsonl"),
            "--tokenizer",
            str(tok),
            "--output",
            str(tmp_path / "data" / name),
            "--num-proc",
            "2",
        )
        assert "prepared 400 documents" in out.stdout
    (tmp_path / "mix.json").write_text(
        json.dumps(
            {
                "name": "text",
                "sources": [{"path": "data/web", "weight": 0.5}, {"path": "data/books", "weight": 0.5}],
            }
        )
    )
    base = [
        "pretrain",
        "--preset",
        "tiny-dense",
        "--data.mixture",
        str(tmp_path / "mix.json"),
        "--data.data-root",
        str(tmp_path),
        "--data.tokenizer",
        str(tok),
        "--data.seq-len",
        "64",
        # Trained on 64-token sequences, evaluated with room for lm-eval's 256 generated tokens (triviaqa,
        # gsm8k): a window larger than the training sequences is kept (config.model.fit_sequence_length).
        "--model.max-seq-len",
        "320",
        "--data.val-sequences",
        "8",
        "--train.steps",
        "6",
        "--train.global-batch",
        "4",
        "--train.micro-batch",
        "4",
        "--train.eval-batch",
        "4",
        "--optim.lr",
        "3e-3",
        "--optim.warmup-frac",
        "0",
        "--train.no-progress",
        "--train.out-dir",
        str(tmp_path / "runs"),
        "--train.run-name",
        "e2e",
    ]

    small = run_cli(base + ["--model.vocab-size", "300"])  # smaller than the tokenizer's 400 pieces
    assert small.returncode == 2 and "--model.vocab-size" in small.stderr and "Traceback" not in small.stderr

    proc = run_train(base + ["--model.vocab-size", "448"])  # padded past the tokenizer: allowed
    res = results(tmp_path / "runs" / "e2e")
    assert res["step"] == 6 and res["metrics"]["val_tokens"] == 8 * 64
    assert res["mixture"]["web"]["samples"] == res["mixture"]["books"]["samples"] == 12
    losses = [h["loss"] for h in res["loss_history"]]
    assert losses[-1] < losses[0]
    assert "validation loss" in proc.stdout
    assert res["model"]["max_seq_len"] == 320

    # The same checkpoint, scored offline on benchmark files in their public schema, then the math gap.
    bench = tmp_path / "bench"
    rows = {
        "piqa/validation.jsonl": [
            {"goal": "Page one", "sol1": "the parrot", "sol2": "the graph", "label": 0},
            {"goal": "Café", "sol1": "book", "sol2": "number", "label": 1},
        ],
        "triviaqa/validation.jsonl": [
            {
                "question": "Which bird?",
                "question_id": "q1",
                "answer": {"value": "Parrot", "aliases": ["Parrot"], "normalized_aliases": ["parrot"]},
            }
        ],
        "gsm8k/test.jsonl": [{"question": "Two and two?", "answer": "2 + 2 = 4\n#### 4"}],
        "gsm8k/train.jsonl": [{"question": "One and one?", "answer": "1 + 1 = 2\n#### 2"}],
    }
    for rel, items in rows.items():
        (bench / rel).parent.mkdir(parents=True, exist_ok=True)
        (bench / rel).write_text("".join(json.dumps(r) + "\n" for r in items))
    run_dir = tmp_path / "runs" / "e2e"
    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "ds_parrots_eval.cli",
            str(run_dir),
            "--tasks",
            "piqa,triviaqa,gsm8k",
            "--bench-dir",
            str(bench),
            "--few-shot",
            "0",
            "--no-progress",
        ],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    scored = json.loads((run_dir / "eval_results.json").read_text())
    assert scored["kind"] == "benchmarks" and set(scored["categories"]) == {
        "world_knowledge",
        "commonsense",
        "math",
    }
    assert scored["tasks"]["piqa"]["n"] == 2 and 0 <= scored["tasks"]["piqa"]["score"] <= 1
    assert scored["params"]["total"] == scored["params"]["active"]  # dense
    gap = subprocess.run(
        [
            sys.executable,
            "-m",
            "ds_parrots_eval.cli",
            "gap",
            str(run_dir),
            "--bench-dir",
            str(bench),
            "--tasks",
            "gsm8k",
            "--few-shot",
            "0",
            "--no-progress",
        ],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gap.returncode == 0, gap.stderr[-3000:]
    g = json.loads((run_dir / "gap_results.json").read_text())["gap"]["gsm8k"]
    assert g["gap"] == g["train"] - g["test"] and g["n_train"] == g["n_test"] == 1
