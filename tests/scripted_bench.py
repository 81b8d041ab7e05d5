"""Benchmark files in their public schema, and a scripted LanguageModel whose scores on them are known: shared
by tests/unit/eval/ and tests/integration/eval/ (and imported by the 2-rank child processes)."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_split(bench_dir: Path, name: str, split: str, rows: list, fmt: str) -> Path:
    folder = bench_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows))
    return path


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
TRIVIA = [
    ("Which planet is red?", ["Mars"], "Mars"),
    ("Who painted the Mona Lisa?", ["Leonardo da Vinci"], "Leonardo"),
    ("What is the largest ocean?", ["Pacific Ocean", "Pacific"], "the Pacific"),
    ("What is the capital of Japan?", ["Tokyo"], "Kyoto"),
]
NQ = [
    ("who wrote hamlet", ["William Shakespeare", "Shakespeare"], "Shakespeare"),
    ("when did world war 2 end", ["1945"], "1945"),
    ("who discovered penicillin", ["Alexander Fleming"], "Fleming"),
]  # f1 2/3
# (goal, sol1, sol2, label, liked): the model likes the gold solution of three of the four.
PIQA = [
    ("piqa goal one", "pwarm", "pcold", 0, "pwarm"),
    ("piqa goal two", "pdry", "pwet", 1, "pwet"),
    ("piqa goal three", "pfast", "pslow", 1, "pslow"),
    ("piqa goal four", "plight", "pheavy", 0, "pheavy"),
]
WINO = [
    ("The tiger chased the mouse because _ was hungry.", "tiger", "mouse", "1", "tiger"),
    ("The vase fell on the rug and _ broke.", "vase", "rug", "1", "rug"),
]
# (question, choices, answerKey, liked): right on one of four; the fourth likes nothing, so ties pick choice A.
ARC = [
    ("arc q one", ["aone", "atwo", "athree"], "B", "atwo"),
    ("arc q two", ["bone", "btwo", "bthree"], "A", "bthree"),
    ("arc q three", ["cone", "ctwo", "cthree"], "C", "ctwo"),
    ("arc q four", ["done", "dtwo", "dthree"], "B", None),
]
CARS = "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?"
# (question, gold after ####, right reply?) -- the CARS row is a built-in exemplar and must not be scored.
GSM_TEST = [
    ("Ann has 1000 apples and buys 72 more. How many?", "1,072", "So 1000 + 72 = 1072. The answer is 1,072."),
    ("Bob has 4 hats and loses 1. How many?", "3", "4 - 1 = 3. The answer is 3."),
    ("Cy reads 5 pages a day for 4 days. How many pages?", "20", "5 * 4 = 20 pages. The answer is 20."),
    ("Dee has 9 cats and gives away 2. How many?", "7", "9 - 2 = 6. The answer is 6."),
    (CARS, "5", "The answer is 5."),
]
GSM_TRAIN = [
    ("Eve bakes 6 pies and sells 2. How many are left?", "4", "6 - 2 = 4. The answer is 4."),
    ("Fay walks 3 km a day for 7 days. How far?", "21", "3 * 7 = 21. The answer is 21."),
    (CARS, "5", "The answer is 5."),
]
HALF = "Half of one is $\\boxed{0.5}$.\nFinal Answer: The final answer is $0.5$. I hope it is correct."
MATH_TEST = [
    ("Compute one half as a fraction.", "$\\boxed{\\frac{1}{2}}$", HALF),
    ("Expand $(x+1)^2$.", "$\\boxed{x^2+2x+1}$", "It is $\\boxed{x^2+1}$."),
]
MATH_TRAIN = [
    ("Simplify $(x+1)^2 - 1$.", "$\\boxed{x^2+2x}$", "We get $\\boxed{x(x+2)}$."),
    ("What is $2^{10}$?", "$\\boxed{1024}$", "It is $\\boxed{1,024}$."),
]

# "math" alone would be the whole category; "hendrycks_math" is the MATH task.
TASKS = ["triviaqa", "nq_open", "piqa", "winogrande", "arc_easy", "gsm8k", "hendrycks_math", "minerva_math"]
FEW_SHOT = {"triviaqa": 2, "nq_open": 0}


def write_fixtures(bench: Path) -> Path:
    write_split(
        bench,
        "triviaqa",
        "validation",
        [{"question": q, "answer": {"value": a[0], "aliases": a}} for q, a, _ in TRIVIA],
        "parquet",
    )
    write_split(
        bench,
        "triviaqa",
        "train",
        [
            {"question": f"Train trivia question {i}", "answer": {"value": f"TrainAnswer{i}", "aliases": []}}
            for i in range(5)
        ],
        "jsonl",
    )
    write_split(bench, "nq_open", "validation", [{"question": q, "answer": a} for q, a, _ in NQ], "jsonl")
    write_split(
        bench,
        "piqa",
        "validation",
        [{"goal": g, "sol1": s1, "sol2": s2, "label": y} for g, s1, s2, y, _ in PIQA],
        "jsonl",
    )
    write_split(
        bench,
        "piqa",
        "train",
        [{"goal": "piqa train goal", "sol1": "ptone", "sol2": "pttwo", "label": 1}],
        "jsonl",
    )
    write_split(
        bench,
        "winogrande",
        "validation",
        [{"sentence": s, "option1": o1, "option2": o2, "answer": y} for s, o1, o2, y, _ in WINO],
        "parquet",
    )
    write_split(
        bench,
        "arc_easy",
        "test",
        [
            {"question": q, "choices": {"text": c, "label": ["A", "B", "C"]}, "answerKey": k}
            for q, c, k, _ in ARC
        ],
        "parquet",
    )
    for split, rows in (("test", GSM_TEST), ("train", GSM_TRAIN)):
        write_split(
            bench,
            "gsm8k",
            split,
            [{"question": q, "answer": f"Work.\n#### {a}"} for q, a, _ in rows],
            "jsonl",
        )
    for split, rows in (("test", MATH_TEST), ("train", MATH_TRAIN)):
        write_split(
            bench,
            "math",
            split,
            [{"problem": p, "solution": s, "level": "Level 1", "type": "Algebra"} for p, s, _ in rows],
            "jsonl",
        )
    return bench


def scripted_lm(right_on_test: bool = True) -> ScriptedLM:
    """The model of the expected scores below; with right_on_test False it fails every math test problem."""
    replies = {q: r for q, _, r in TRIVIA + NQ}
    replies.update({q: r for q, _, r in GSM_TRAIN + MATH_TRAIN})
    replies.update({q: r if right_on_test else "The answer is -1." for q, _, r in GSM_TEST + MATH_TEST})
    liked = {row[-1] for row in PIQA + WINO + ARC if row[-1]}
    return ScriptedLM(replies, liked)
