"""The synthetic corpus's eval sets (ds-parrots data synth-corpus) are read by lm-eval's own triviaqa and gsm8k
tasks (site-packages YAMLs, through TaskManager) like the real benchmarks: its prompts are the corpus's
question documents, gold answers score 1 and wrong ones 0, and ds-parrots-eval scores a tiny export on them."""

import json
import os
import tempfile
from pathlib import Path

import pytest
from lm_eval.api.model import LM

from ds_parrots.data.synthetic_corpus import KnowledgeConfig, MathConfig, write_corpus

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "corpus"
    write_corpus(out, 0, KnowledgeConfig(people=12), MathConfig(math_train=12, math_test=8))
    return out


def rows(corpus, benchmark, split):
    path = corpus / "eval" / benchmark / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def corpus_texts(corpus):
    return {
        json.loads(line)["text"]
        for name in ("knowledge", "math")
        for line in (corpus / "corpus" / f"{name}.jsonl").read_text().splitlines()
    }


def test_lm_eval_tasks_render_our_records_as_the_corpus_documents(corpus):
    from lm_eval.tasks import TaskManager

    from ds_parrots_eval.harness.task_files import plan, write

    with tempfile.TemporaryDirectory() as folder:
        write(plan(["triviaqa", "gsm8k"], corpus / "eval", {"triviaqa": 0, "gsm8k": 0}), Path(folder))
        tasks = TaskManager(include_path=folder, include_defaults=False).load(["triviaqa", "gsm8k"])["tasks"]
        trivia, gsm = tasks["triviaqa"], tasks["gsm8k"]
        splits = {
            "trivia_train": list(trivia.training_docs()),
            "trivia_scored": list(trivia.validation_docs()),
            "gsm_train": list(gsm.training_docs()),
            "gsm_scored": list(gsm.test_docs()),
        }
    assert [len(d) for d in splits.values()] == [36, 36, 12, 8]
    texts = corpus_texts(corpus)
    qa = "\n\n".join(t for t in texts if t.startswith("Question:"))

    def shown(task, doc):
        target = task.doc_to_target(doc)
        return (
            task.doc_to_text(doc)
            + task.config.target_delimiter
            + (target[0] if isinstance(target, list) else target)
        )

    # Training questions are in the corpus exactly as lm-eval prompts and answers them; scored ones are not.
    assert all(shown(trivia, d) in qa for d in splits["trivia_train"])
    assert not any(trivia.doc_to_text(d) in qa for d in splits["trivia_scored"])
    assert all(shown(gsm, d) in texts for d in splits["gsm_train"])
    assert not any(shown(gsm, d) in texts for d in splits["gsm_scored"])
    assert splits["trivia_scored"][0]["answer"]["aliases"] == trivia.doc_to_target(splits["trivia_scored"][0])


class Replies(LM):
    """Answers the question each prompt ends with from a table (exemplars come first)."""

    def __init__(self, replies: dict[str, str]):
        super().__init__()
        self.replies = replies

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for req in requests:
            ends = [q for q in self.replies if req.args[0].endswith(q)]
            assert len(ends) == 1, req.args[0][-200:]
            out.append(self.replies[ends[0]])
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise AssertionError("generative tasks only")

    loglikelihood_rolling = loglikelihood


def replies(corpus, right: bool) -> dict[str, str]:
    """Gold answers (a QA answer cut as lm-eval's stop strings would; a worked solution), or wrong ones."""
    out = {}
    for split in ("train", "validation"):
        for r in rows(corpus, "triviaqa", split):
            value = r["answer"]["value"]
            out[f"Question: {r['question']}?\nAnswer:"] = f" {value}" if right else f" {value}x"
    for split in ("train", "test"):
        for r in rows(corpus, "gsm8k", split):
            head, _, number = r["answer"].rpartition("#### ")
            out[f"Question: {r['question']}\nAnswer:"] = f" {head}#### {number if right else int(number) + 1}"
    return out


@pytest.mark.parametrize("right", [True, False], ids=["gold", "wrong"])
def test_gold_answers_score_one_and_wrong_answers_zero(corpus, right):
    from ds_parrots_eval.harness.run import evaluate_tasks, shape
    from ds_parrots_eval.harness.task_files import plan

    tasks = plan(["triviaqa", "gsm8k"], corpus / "eval", {"triviaqa": 2, "gsm8k": 2})
    tasks += plan(["gsm8k"], corpus / "eval", {"gsm8k": 2}, eval_split="train", suffix="_train")
    report = shape(evaluate_tasks(Replies(replies(corpus, right)), tasks, bootstrap_iters=0), tasks)
    scores = report["lm_eval"]["results"]
    assert scores["triviaqa"]["exact_match,remove_whitespace"] == float(right)
    assert scores["gsm8k"]["exact_match,strict-match"] == float(right)
    assert scores["gsm8k_train"]["exact_match,strict-match"] == float(right)


def test_ds_parrots_eval_and_gap_score_a_tiny_export(corpus, tmp_path):
    from ds_parrots_eval.cli import main as ds_parrots_eval
    from eval_bench_files import export, tiny_model
    from text_corpus import train_tiny

    tok = train_tiny(tmp_path, sorted(t.replace("\n", " ") for t in corpus_texts(corpus)))
    hf = export(tiny_model("moe", 400, max_seq_len=1024), tok.path, tmp_path / "hf")
    common = ["--bench-dir", str(corpus / "eval"), "--few-shot", "1", "--limit", "3", "--no-progress"]
    assert (
        ds_parrots_eval([str(hf), "--tasks", "triviaqa,gsm8k", "--out", str(tmp_path / "r.json"), *common])
        == 0
    )
    scored = json.loads((tmp_path / "r.json").read_text())
    assert {k: (v["split"], v["n"]) for k, v in scored["tasks"].items()} == {
        "triviaqa": ("validation", 3),
        "gsm8k": ("test", 3),
    }
    assert scored["params"]["total"] > scored["params"]["active"]
    assert (
        ds_parrots_eval(["gap", str(hf), "--tasks", "gsm8k", "--out", str(tmp_path / "g.json"), *common]) == 0
    )
    gap = json.loads((tmp_path / "g.json").read_text())["gap"]["gsm8k"]
    assert (gap["n_train"], gap["n_test"]) == (3, 3) and gap["gap"] == gap["train"] - gap["test"]
