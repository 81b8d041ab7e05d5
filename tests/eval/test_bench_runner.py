"""run_benchmarks / run_gap with a scripted model: exact scores, category means, few-shot prompts, limit, 2 ranks."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.parallel.process_group import free_port
from ds_parrots_eval.benchmarks.runner import available_tasks, run_benchmarks
from ds_parrots_eval.gap import run_gap
from test_bench_readers import write_split


class ScriptedLM:
    """A LanguageModel that answers from a script.

    generate: the reply scripted for the last known question in the prompt (the scored one; exemplars come first).
    loglikelihood: -0.1 per byte for a liked choice (its text is the continuation, or WinoGrande's context ends
    with it), -1 per byte otherwise; so a liked choice wins on both acc and acc_norm.
    """

    def __init__(self, replies: dict[str, str], liked: set[str]):
        self.replies, self.liked = replies, liked
        self.prompts: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.call_sizes: list[int] = []

    def generate(self, prompts, max_new_tokens, stop):
        self.prompts.extend(prompts)
        self.call_sizes.append(len(prompts))
        out = []
        for prompt in prompts:
            known = [q for q in self.replies if q in prompt]
            out.append(self.replies[max(known, key=prompt.rfind)] if known else "I do not know")
        return out

    def loglikelihood(self, requests):
        self.requests.extend(requests)
        self.call_sizes.append(len(requests))
        out = []
        for context, continuation in requests:
            liked = continuation.strip() in self.liked or any(context.endswith(" " + w) for w in self.liked)
            out.append(((-0.1 if liked else -1.0) * len(continuation.encode()), 1))
        return out


# (question, gold answers, scripted reply): em 1, em 0 / f1 0.5, em 1 via an alias and article, em 0.
TRIVIA = [("Which planet is red?", ["Mars"], "Mars"),
          ("Who painted the Mona Lisa?", ["Leonardo da Vinci"], "Leonardo"),
          ("What is the largest ocean?", ["Pacific Ocean", "Pacific"], "the Pacific"),
          ("What is the capital of Japan?", ["Tokyo"], "Kyoto")]
NQ = [("who wrote hamlet", ["William Shakespeare", "Shakespeare"], "Shakespeare"),
      ("when did world war 2 end", ["1945"], "1945"),
      ("who discovered penicillin", ["Alexander Fleming"], "Fleming")]  # f1 2/3
# (goal, sol1, sol2, label, liked): the model likes the gold solution of three of the four.
PIQA = [("piqa goal one", "pwarm", "pcold", 0, "pwarm"), ("piqa goal two", "pdry", "pwet", 1, "pwet"),
        ("piqa goal three", "pfast", "pslow", 1, "pslow"), ("piqa goal four", "plight", "pheavy", 0, "pheavy")]
WINO = [("The tiger chased the mouse because _ was hungry.", "tiger", "mouse", "1", "tiger"),
        ("The vase fell on the rug and _ broke.", "vase", "rug", "1", "rug")]
# (question, choices, answerKey, liked): right on one of four; the fourth likes nothing, so ties pick choice A.
ARC = [("arc q one", ["aone", "atwo", "athree"], "B", "atwo"),
       ("arc q two", ["bone", "btwo", "bthree"], "A", "bthree"),
       ("arc q three", ["cone", "ctwo", "cthree"], "C", "ctwo"),
       ("arc q four", ["done", "dtwo", "dthree"], "B", None)]
CARS = "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?"
# (question, gold after ####, right reply?) -- the CARS row is a built-in exemplar and must not be scored.
GSM_TEST = [("Ann has 1000 apples and buys 72 more. How many?", "1,072", "So 1000 + 72 = 1072. The answer is 1,072."),
            ("Bob has 4 hats and loses 1. How many?", "3", "4 - 1 = 3. The answer is 3."),
            ("Cy reads 5 pages a day for 4 days. How many pages?", "20", "5 * 4 = 20 pages. The answer is 20."),
            ("Dee has 9 cats and gives away 2. How many?", "7", "9 - 2 = 6. The answer is 6."),
            (CARS, "5", "The answer is 5.")]
GSM_TRAIN = [("Eve bakes 6 pies and sells 2. How many are left?", "4", "6 - 2 = 4. The answer is 4."),
             ("Fay walks 3 km a day for 7 days. How far?", "21", "3 * 7 = 21. The answer is 21."),
             (CARS, "5", "The answer is 5.")]
HALF = "Half of one is $\\boxed{0.5}$.\nFinal Answer: The final answer is $0.5$. I hope it is correct."
MATH_TEST = [("Compute one half as a fraction.", "$\\boxed{\\frac{1}{2}}$", HALF),
             ("Expand $(x+1)^2$.", "$\\boxed{x^2+2x+1}$", "It is $\\boxed{x^2+1}$.")]
MATH_TRAIN = [("Simplify $(x+1)^2 - 1$.", "$\\boxed{x^2+2x}$", "We get $\\boxed{x(x+2)}$."),
              ("What is $2^{10}$?", "$\\boxed{1024}$", "It is $\\boxed{1,024}$.")]

# "math" alone would be the whole category; "hendrycks_math" is the MATH task.
TASKS = ["triviaqa", "nq_open", "piqa", "winogrande", "arc_easy", "gsm8k", "hendrycks_math", "minerva_math"]
FEW_SHOT = {"triviaqa": 2, "nq_open": 0}


def write_fixtures(bench: Path) -> Path:
    write_split(bench, "triviaqa", "validation",
                [{"question": q, "answer": {"value": a[0], "aliases": a}} for q, a, _ in TRIVIA], "parquet")
    write_split(bench, "triviaqa", "train",
                [{"question": f"Train trivia question {i}", "answer": {"value": f"TrainAnswer{i}", "aliases": []}}
                 for i in range(5)], "jsonl")
    write_split(bench, "nq_open", "validation", [{"question": q, "answer": a} for q, a, _ in NQ], "jsonl")
    write_split(bench, "piqa", "validation",
                [{"goal": g, "sol1": s1, "sol2": s2, "label": y} for g, s1, s2, y, _ in PIQA], "jsonl")
    write_split(bench, "piqa", "train", [{"goal": "piqa train goal", "sol1": "ptone", "sol2": "pttwo", "label": 1}],
                "jsonl")
    write_split(bench, "winogrande", "validation",
                [{"sentence": s, "option1": o1, "option2": o2, "answer": y} for s, o1, o2, y, _ in WINO], "parquet")
    write_split(bench, "arc_easy", "test",
                [{"question": q, "choices": {"text": c, "label": ["A", "B", "C"]}, "answerKey": k}
                 for q, c, k, _ in ARC], "parquet")
    for split, rows in (("test", GSM_TEST), ("train", GSM_TRAIN)):
        write_split(bench, "gsm8k", split, [{"question": q, "answer": f"Work.\n#### {a}"} for q, a, _ in rows],
                    "jsonl")
    for split, rows in (("test", MATH_TEST), ("train", MATH_TRAIN)):
        write_split(bench, "math", split, [{"problem": p, "solution": s, "level": "Level 1", "type": "Algebra"}
                                           for p, s, _ in rows], "jsonl")
    return bench


def scripted_lm(right_on_test: bool = True) -> ScriptedLM:
    """The model of the expected scores below; with right_on_test False it fails every math test problem."""
    replies = {q: r for q, _, r in TRIVIA + NQ}
    replies.update({q: r for q, _, r in GSM_TRAIN + MATH_TRAIN})
    replies.update({q: r if right_on_test else "The answer is -1." for q, _, r in GSM_TEST + MATH_TEST})
    liked = {row[-1] for row in PIQA + WINO + ARC if row[-1]}
    return ScriptedLM(replies, liked)


@pytest.fixture
def bench(tmp_path):
    return write_fixtures(tmp_path / "bench")


def test_scores_equal_expected_fractions(bench):
    report = run_benchmarks(scripted_lm(), TASKS, bench, few_shot=FEW_SHOT, progress=False)
    tasks = report["tasks"]
    assert tasks["triviaqa"]["metrics"] == pytest.approx({"em": 0.5, "f1": (1 + 0.5 + 1 + 0) / 4})
    assert tasks["nq_open"]["metrics"] == pytest.approx({"em": 2 / 3, "f1": (1 + 1 + 2 / 3) / 3})
    assert tasks["piqa"]["metrics"] == {"acc": 0.75, "acc_norm": 0.75}
    assert tasks["winogrande"]["score"] == 0.5
    assert tasks["arc_easy"]["score"] == 0.25
    assert tasks["gsm8k"]["metrics"] == {"acc": 0.75}
    assert tasks["math"]["score"] == 0.5 and tasks["minerva_math"]["score"] == 0.5
    assert {k: (t["metric"], t["n"], t["few_shot"]) for k, t in tasks.items()} == {
        "triviaqa": ("em", 4, 2), "nq_open": ("em", 3, 0), "piqa": ("acc_norm", 4, 0),
        "winogrande": ("acc_norm", 2, 0), "arc_easy": ("acc_norm", 4, 0), "gsm8k": ("acc", 4, 8),
        "math": ("acc", 2, 4), "minerva_math": ("acc", 2, 4)}
    assert report["categories"] == pytest.approx({"world_knowledge": (0.5 + 2 / 3) / 2,
                                                  "commonsense": (0.75 + 0.5 + 0.25) / 3,
                                                  "math": (0.75 + 0.5 + 0.5) / 3})


def test_only_categories_that_ran_are_reported(bench):
    report = run_benchmarks(scripted_lm(), ["piqa"], bench, progress=False)
    assert report["categories"] == {"commonsense": 0.75}


def test_qa_prompts_hold_the_same_sampled_exemplars_and_only_the_scored_question(bench):
    lm = scripted_lm()
    run_benchmarks(lm, ["triviaqa"], bench, few_shot={"triviaqa": 2}, progress=False)
    assert len(lm.prompts) == len(TRIVIA)
    exemplar_sets = []
    for prompt, (question, _, _) in zip(lm.prompts, TRIVIA):
        shown = re.findall(r"Question: Train trivia question (\d)\?\nAnswer: TrainAnswer(\d)\n\n", prompt)
        assert len(shown) == 2 and all(q == a for q, a in shown)
        exemplar_sets.append(shown)
        assert prompt.endswith(f"Question: {question}\nAnswer:")
        assert sum(prompt.count(q) for q, _, _ in TRIVIA) == 1
    assert all(s == exemplar_sets[0] for s in exemplar_sets)


def test_gsm8k_prompts_use_the_eight_cot_exemplars_and_skip_a_scored_exemplar(bench):
    lm = scripted_lm()
    report = run_benchmarks(lm, ["gsm8k"], bench, progress=False)
    assert report["tasks"]["gsm8k"]["n"] == 4  # the CARS row is an exemplar, so it is not scored
    for prompt, (question, _, _) in zip(lm.prompts, GSM_TEST):
        assert prompt.count("The answer is") == 8
        assert prompt.startswith("Q: There are 15 trees in the grove.")
        assert prompt.endswith(f"Q: {question}\nA:")


def test_choice_few_shot_prefixes_every_choice_with_the_gold_exemplar(bench):
    lm = scripted_lm()
    run_benchmarks(lm, ["piqa"], bench, few_shot={"piqa": 1}, progress=False)
    exemplar = "Question: piqa train goal\nAnswer: pttwo\n\n"
    assert len(lm.requests) == 2 * len(PIQA)
    assert all(context.startswith(exemplar) for context, _ in lm.requests)


def test_few_shot_keys_may_be_categories_and_task_names_win(bench):
    report = run_benchmarks(scripted_lm(), ["piqa", "winogrande", "gsm8k"], bench,
                            few_shot={"piqa": 1, "commonsense": 0, "all": 2}, progress=False)
    assert {k: t["few_shot"] for k, t in report["tasks"].items()} == {"piqa": 1, "winogrande": 0, "gsm8k": 2}


def test_limit_scores_only_the_first_rows(bench):
    lm = scripted_lm()
    report = run_benchmarks(lm, ["gsm8k", "piqa"], bench, limit=2, progress=False)
    assert report["tasks"]["gsm8k"]["n"] == 2 and report["tasks"]["piqa"]["n"] == 2
    assert [p.endswith(f"Q: {q}\nA:") for p, (q, _, _) in zip(lm.prompts, GSM_TEST)] == [True, True]
    assert report["tasks"]["gsm8k"]["score"] == 1.0 and report["tasks"]["piqa"]["score"] == 1.0


def test_calls_are_batched(bench):
    lm = scripted_lm()
    run_benchmarks(lm, ["gsm8k", "piqa"], bench, batch_size=3, progress=False)
    # gsm8k: 4 prompts in calls of 3 + 1; piqa: 4 items x 2 choices in calls of 6 + 2 requests.
    assert lm.call_sizes == [3, 1, 6, 2]


def test_bad_arguments_are_config_errors(bench):
    lm = scripted_lm()
    with pytest.raises(ConfigError, match="unknown benchmark 'mmlu'"):
        run_benchmarks(lm, ["mmlu"], bench, progress=False)
    with pytest.raises(ConfigError, match="few-shot count given for unknown benchmark 'pika'"):
        run_benchmarks(lm, ["piqa"], bench, few_shot={"pika": 1}, progress=False)
    with pytest.raises(ConfigError, match="8 standard exemplars; few-shot 9"):
        run_benchmarks(lm, ["gsm8k"], bench, few_shot={"gsm8k": 9}, progress=False)
    with pytest.raises(ConfigError, match="few-shot 6 for 'triviaqa' but .* has only 5 rows"):
        run_benchmarks(lm, ["triviaqa"], bench, few_shot={"triviaqa": 6}, progress=False)
    with pytest.raises(ConfigError, match="no 'test' split for benchmark 'svamp'"):
        run_benchmarks(lm, ["svamp"], bench, progress=False)
    with pytest.raises(ConfigError, match="rank 2 is not in a world of size 2"):
        run_benchmarks(lm, ["piqa"], bench, rank=2, world_size=2, progress=False)


def test_available_tasks_lists_all_benchmarks():
    assert len(available_tasks()) == 19 and "minerva_math" in available_tasks()


def test_gap_right_on_train_wrong_on_test_is_one(bench):
    lm = scripted_lm(right_on_test=False)
    report = run_gap(lm, bench, progress=False)
    assert report == {"gsm8k": {"train": 1.0, "test": 0.0, "gap": 1.0, "n_train": 2, "n_test": 4, "few_shot": 8},
                      "math": {"train": 1.0, "test": 0.0, "gap": 1.0, "n_train": 2, "n_test": 2, "few_shot": 4}}
    # The train row equal to a CoT exemplar was never the scored question of a prompt.
    assert not any(p.endswith(f"Q: {CARS}\nA:") for p in lm.prompts)


def test_gap_uses_the_same_scorer_as_the_benchmarks(bench):
    report = run_gap(scripted_lm(), bench, tasks=("gsm8k",), progress=False)
    assert report["gsm8k"]["test"] == run_benchmarks(scripted_lm(), ["gsm8k"], bench, progress=False)[
        "tasks"]["gsm8k"]["score"] == 0.75
    assert report["gsm8k"]["gap"] == pytest.approx(0.25)


def test_gap_refuses_non_math_and_single_split_tasks(bench):
    with pytest.raises(ConfigError, match="'piqa' is commonsense"):
        run_gap(scripted_lm(), bench, tasks=("piqa",), progress=False)
    with pytest.raises(ConfigError, match="'gsm_hard' has no test split"):
        run_gap(scripted_lm(), bench, tasks=("gsm_hard",), progress=False)


CHILD = """
import json, sys
from pathlib import Path
import torch.distributed as dist
from test_bench_runner import FEW_SHOT, TASKS, scripted_lm
from ds_parrots_eval.benchmarks.runner import run_benchmarks
from ds_parrots_eval.gap import run_gap

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
bench, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {"bench": run_benchmarks(scripted_lm(), TASKS, bench, few_shot=FEW_SHOT, rank=rank, world_size=world,
                                  progress=False, batch_size=2),
          "gap": run_gap(scripted_lm(right_on_test=False), bench, rank=rank, world_size=world, progress=False)}
(out / f"rank{rank}.json").write_text(json.dumps(result))
dist.destroy_process_group()
"""


def test_two_ranks_equal_one_process(bench, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE="2", PYTHONPATH=os.pathsep.join([str(Path(__file__).parent),
                                                           os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(bench), str(tmp_path)], env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)
    single = {"bench": run_benchmarks(scripted_lm(), TASKS, bench, few_shot=FEW_SHOT, progress=False),
              "gap": run_gap(scripted_lm(right_on_test=False), bench, progress=False)}
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1] == json.loads(json.dumps(single))
