"""The four benchmarks lm-eval lacks (eval/tasks/*.yaml: HotpotQA, ComplexWebQuestions, GSM-Hard, SVAMP) load
from local files in their public schema and score hand-checked answers, run by lm-eval's own evaluator."""

import os

from lm_eval.api.model import LM

from eval_bench_files import write_split

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


class Scripted(LM):
    """Replies to the last question of each prompt (exemplars come first) from a script."""

    def __init__(self, replies):
        super().__init__()
        self.replies, self.prompts = replies, []

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for req in requests:
            prompt = req.args[0]
            self.prompts.append(prompt)
            last = max(self.replies, key=lambda q: prompt.rfind(q))
            out.append(self.replies[last])
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise AssertionError("generative tasks only")

    loglikelihood_rolling = loglikelihood


def test_repo_tasks_load_local_files_and_score_hand_checked_answers(tmp_path):
    from ds_parrots_eval.harness.run import evaluate_tasks, shape
    from ds_parrots_eval.harness.task_files import plan

    bench = tmp_path / "bench"
    hotpot = [
        {
            "id": "h1",
            "question": "Which city hosts the Louvre?",
            "answer": "Paris",
            "type": "bridge",
            "level": "easy",
        },
        {
            "id": "h2",
            "question": "Who wrote Hamlet?",
            "answer": "William Shakespeare",
            "type": "bridge",
            "level": "easy",
        },
    ]
    write_split(bench, "hotpotqa", "validation", hotpot)
    write_split(bench, "hotpotqa", "train", hotpot)
    # ComplexWebQuestions: every alias is gold; parquet-style struct of lists and JSON list of objects alike.
    cwq = [
        {
            "ID": "c1",
            "question": "what is the capital of the country where the euro started",
            "answers": [{"answer": "Brussels", "aliases": ["City of Brussels"], "answer_id": "m.1"}],
        },
        {
            "ID": "c2",
            "question": "what language is spoken where the tango was born",
            "answers": {"answer": ["Spanish"], "aliases": [["Castilian"]], "answer_id": ["m.2"]},
        },
    ]
    write_split(bench, "complexwebquestions", "validation", cwq)
    gsm_hard = [
        {
            "input": "A parrot has 1234567 seeds and eats 7. How many are left?",
            "target": 1234560.0,
            "code": "",
        },
        {"input": "Two parrots each have 2.5 apples. How many apples in all?", "target": 5.0, "code": ""},
    ]
    write_split(bench, "gsm_hard", "train", gsm_hard)
    svamp = [
        {
            "ID": "s1",
            "Body": "There are 5 birds on a tree. 3 more come.",
            "Question": "How many birds?",
            "Equation": "( 5.0 + 3.0 )",
            "Answer": 8.0,
            "Type": "Addition",
        },
        {
            "ID": "s2",
            "Body": "Tom had 10 seeds and gave away 4.",
            "Question": "How many seeds are left?",
            "Equation": "( 10.0 - 4.0 )",
            "Answer": 6.0,
            "Type": "Subtraction",
        },
    ]
    write_split(bench, "svamp", "test", svamp)
    write_split(bench, "svamp", "train", svamp)
    replies = {
        "Which city hosts the Louvre?": " paris",  # em ignores case
        "Who wrote Hamlet?": " Shakespeare",  # not the whole answer: em 0
        "where the euro started": " the City of Brussels",  # an alias, article ignored
        "where the tango was born": " Italian",
        "1234567 seeds": " It has 1234567 - 7 = 1234560 left.\n#### 1,234,560",  # strict-match; commas ignored
        "2.5 apples": " 2.5 + 2.5 = 5\n#### 6",
        "5 birds": " 5 + 3 = 8\n#### 8",
        "10 seeds": " 10 - 4 = 6\n#### 6",
    }
    tasks = plan(
        ["hotpotqa", "complexwebquestions", "gsm_hard", "svamp"],
        bench,
        {"hotpotqa": 1, "complexwebquestions": 0, "gsm_hard": 1, "svamp": 1},
    )
    lm = Scripted(replies)
    report = shape(evaluate_tasks(lm, tasks, bootstrap_iters=0), tasks)
    scores = {name: t["score"] for name, t in report["tasks"].items()}
    assert scores == {"hotpotqa": 0.5, "complexwebquestions": 0.5, "gsm_hard": 0.5, "svamp": 1.0}
    assert report["tasks"]["gsm_hard"]["split"] == "train" and report["tasks"]["svamp"]["split"] == "test"
    # One exemplar each, drawn from the training split, never the scored problem itself; GSM8k's answer line.
    svamp_prompt = next(p for p in lm.prompts if p.endswith("How many birds?\nAnswer:"))
    assert svamp_prompt.startswith("Question: Tom had 10 seeds") and "#### 6" in svamp_prompt
    hotpot_prompt = next(p for p in lm.prompts if p.endswith("Q: Who wrote Hamlet?\nA:"))
    assert hotpot_prompt.startswith("Answer these questions:\n\nQ: Which city hosts the Louvre?\nA: Paris\n")
