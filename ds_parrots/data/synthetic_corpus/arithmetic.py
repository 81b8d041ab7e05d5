"""The math source: arithmetic word problems with worked solutions in GSM8k's style and public schema
(openai/gsm8k, main: `question`, `answer`), the fields lm-eval's `gsm8k` task reads.

A solution is 2 to 4 steps, each with GSM8k's calculator annotation (`6*4 = <<6*4=24>>24`), and ends in
`#### N`, the line lm-eval's strict-match filter reads. Every intermediate result is a whole number.

Problems are drawn from a few templates (shopping, ages, rates, savings, sharing, travel, discounts,
harvests); a problem's identity is its template and its numbers, not the names or items around them. The
training split (also corpus documents) and the held-out test split share no (template, numbers): the test
measures whether the procedure generalizes, the training split how much of it was memorized.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ds_parrots.errors import ConfigError

from .vocab import CROPS, FIRST_NAMES, FRUITS, GOODS, PRODUCTS, VEHICLES, WEARABLES


@dataclass
class MathConfig:
    """Sizes of the math source (GSM8k-style word problems)."""

    math_train: int = 2000
    """Problems of the training split: corpus documents, and gsm8k's 'train' split (the memorization side of
    the generalization gap)."""
    math_test: int = 500
    """Held-out problems of gsm8k's 'test' split, from the same templates with other numbers."""


@dataclass(frozen=True)
class Problem:
    template: str
    numbers: dict[str, int]
    """The numbers the problem states (its identity with the template)."""
    question: str
    answer: str
    """The worked solution, ending in '#### <value>'."""
    value: int

    @property
    def key(self) -> tuple:
        return (self.template, tuple(sorted(self.numbers.items())))

    def record(self) -> dict:
        """The problem in GSM8k's public schema."""
        return {"question": self.question, "answer": self.answer}


DOCUMENT = "Question: {question}\nAnswer: {answer}"
"""A problem as lm-eval's gsm8k prompt renders it with its solution (doc_to_text, delimiter " ", target)."""


def calc(a: int, op: str, b: int) -> tuple[str, int]:
    """`a op b = <<a op b=c>>c` (GSM8k's calculator annotation) and c; division only when exact."""
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    assert op != "/" or a % b == 0, (a, b)
    expr = f"{a}{op}{b}"
    return f"{expr} = <<{expr}={value}>>{value}", value


# Each template draws its numbers and words and returns (numbers, question, solution lines, answer).
Drawn = tuple[dict[str, int], str, list[str], int]


def shopping(rng: random.Random, name: str) -> Drawn:
    (one, ones), (_, others) = rng.sample(GOODS, 2)
    a, p, b, q = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 6)
    s1, x = calc(a, "*", p)
    s2, y = calc(b, "*", q)
    s3, z = calc(x, "+", y)
    bill = 100 if z < 100 else 200
    s4, change = calc(bill, "-", z)
    question = (
        f"{name} buys {a} {ones} for ${p} each and {b} {others} for ${q} each. {name} pays with a ${bill} "
        f"bill. How much change does {name} get back?"
    )
    lines = [
        f"The {ones} cost {s1} dollars.",
        f"The {others} cost {s2} dollars.",
        f"In total {name} spends {s3} dollars.",
        f"The change is {s4} dollars.",
    ]
    return {"a": a, "p": p, "b": b, "q": q}, question, lines, change


def ages(rng: random.Random, name: str) -> Drawn:
    other, third = rng.sample([f for f in FIRST_NAMES if f != name], 2)
    b, d, k = rng.randint(3, 20), rng.randint(2, 40), rng.randint(2, 5)
    s1, older = calc(b, "+", d)
    s2, times = calc(k, "*", b)
    s3, total = calc(older, "+", times)
    question = (
        f"{other} is {b} years old. {name} is {d} years older than {other}, and {third} is {k} times as old "
        f"as {other}. What is the sum of the ages of {name} and {third}?"
    )
    lines = [
        f"{name} is {s1} years old.",
        f"{third} is {s2} years old.",
        f"Together they are {s3} years old.",
    ]
    return {"b": b, "d": d, "k": k}, question, lines, total


def rates(rng: random.Random, name: str) -> Drawn:
    things = rng.choice(PRODUCTS)
    r, h, d = rng.randint(3, 20), rng.randint(2, 10), rng.randint(2, 7)
    s1, per_day = calc(r, "*", h)
    s2, made = calc(per_day, "*", d)
    broken = rng.randint(1, min(made - 1, 40))
    s3, good = calc(made, "-", broken)
    question = (
        f"A machine in {name}'s workshop makes {r} {things} every hour and runs {h} hours a day. After {d} "
        f"days, {broken} of the {things} are thrown away because they are broken. How many good {things} "
        "are left?"
    )
    lines = [
        f"Each day the machine makes {s1} {things}.",
        f"In {d} days it makes {s2} {things}.",
        f"The good ones are {s3} {things}.",
    ]
    return {"r": r, "h": h, "d": d, "broken": broken}, question, lines, good


def savings(rng: random.Random, name: str) -> Drawn:
    thing = rng.choice(WEARABLES)
    w, n = rng.randint(3, 40), rng.randint(2, 12)
    s1, saved = calc(w, "*", n)
    s = rng.randint(1, saved - 1)
    s2, left = calc(saved, "-", s)
    question = (
        f"{name} saves ${w} every week. After {n} weeks, {name} spends ${s} on a {thing}. How many dollars "
        f"does {name} have left?"
    )
    lines = [f"{name} saves {s1} dollars.", f"After buying the {thing}, {name} has {s2} dollars left."]
    return {"w": w, "n": n, "s": s}, question, lines, left


def sharing(rng: random.Random, name: str) -> Drawn:
    things = rng.choice(FRUITS)
    k, each = rng.randint(2, 9), rng.randint(2, 12)
    total = k * each
    b = rng.randint(1, total - 1)
    a = total - b
    s1, _ = calc(a, "+", b)
    s2, share = calc(total, "/", k)
    question = (
        f"{name} has {a} {things} and gets {b} more. {name} shares all of them equally among {k} friends. "
        f"How many {things} does each friend get?"
    )
    lines = [f"{name} has {s1} {things}.", f"Each friend gets {s2} {things}."]
    return {"a": a, "b": b, "k": k}, question, lines, share


def travel(rng: random.Random, name: str) -> Drawn:
    vehicle = rng.choice(VEHICLES)
    v, t, u, s = rng.randint(20, 90), rng.randint(2, 6), rng.randint(20, 90), rng.randint(1, 5)
    s1, first = calc(v, "*", t)
    s2, second = calc(u, "*", s)
    s3, total = calc(first, "+", second)
    question = (
        f"{name} drives a {vehicle} at {v} km per hour for {t} hours, then at {u} km per hour for {s} hours. "
        "How many kilometers does the trip cover?"
    )
    lines = [
        f"The first part covers {s1} km.",
        f"The second part covers {s2} km.",
        f"The whole trip covers {s3} km.",
    ]
    return {"v": v, "t": t, "u": u, "s": s}, question, lines, total


def discount(rng: random.Random, name: str) -> Drawn:
    thing = rng.choice(WEARABLES)
    p, pct, n = 20 * rng.randint(1, 30), rng.choice((10, 20, 25, 30, 40, 50)), rng.randint(2, 9)
    cut = p * pct // 100  # whole: p is a multiple of 20 and pct of 5
    s1 = f"{p}*{pct}/100 = <<{p}*{pct}/100={cut}>>{cut}"
    s2, price = calc(p, "-", cut)
    s3, total = calc(n, "*", price)
    question = (
        f"A {thing} costs ${p}. The store takes {pct}% off the price. {name} buys {n} of them at the sale "
        f"price. How many dollars does {name} pay?"
    )
    lines = [
        f"The discount is {s1} dollars.",
        f"Each {thing} costs {s2} dollars.",
        f"{name} pays {s3} dollars.",
    ]
    return {"p": p, "pct": pct, "n": n}, question, lines, total


def harvest(rng: random.Random, name: str) -> Drawn:
    crop = rng.choice(CROPS)
    r, c, k = rng.randint(2, 9), rng.randint(3, 12), rng.randint(2, 10)
    b = rng.choice([b for b in range(3, 13) if (r * c * k) % b == 0])  # never empty: c divides it
    s1, plants = calc(r, "*", c)
    s2, picked = calc(plants, "*", k)
    s3, boxes = calc(picked, "/", b)
    question = (
        f"{name} plants {r} rows of {crop} with {c} plants in each row. Each plant gives {k} {crop}. {name} "
        f"packs them into boxes of {b}. How many boxes does {name} fill?"
    )
    lines = [f"There are {s1} plants.", f"They give {s2} {crop}.", f"That fills {s3} boxes."]
    return {"r": r, "c": c, "k": k, "b": b}, question, lines, boxes


TEMPLATES: dict[str, Callable[[random.Random, str], Drawn]] = {
    f.__name__: f for f in (shopping, ages, rates, savings, sharing, travel, discount, harvest)
}


def draw(rng: random.Random) -> Problem:
    template = rng.choice(list(TEMPLATES))
    numbers, question, lines, value = TEMPLATES[template](rng, rng.choice(FIRST_NAMES))
    answer = "\n".join(lines) + f"\n#### {value}"
    return Problem(template, numbers, question, answer, value)


def check(cfg: MathConfig) -> None:
    for flag, n in (("--math-train", cfg.math_train), ("--math-test", cfg.math_test)):
        if n < 1:
            raise ConfigError(f"{flag}={n}: needs at least 1 problem")


def generate(cfg: MathConfig, seed: int) -> tuple[list[Problem], list[Problem]]:
    """(train, test): distinct (template, numbers) throughout, a pure function of (cfg, seed)."""
    check(cfg)
    rng = random.Random(f"ds-parrots synth-corpus math {seed}")
    wanted = cfg.math_train + cfg.math_test
    problems: dict[tuple, Problem] = {}
    for _ in range(20 * wanted + 1000):  # repeats are rare at these sizes; bounded in case they are asked big
        p = draw(rng)
        problems.setdefault(p.key, p)
        if len(problems) == wanted:
            break
    else:
        raise ConfigError(
            f"--math-train={cfg.math_train} + --math-test={cfg.math_test}: the templates gave only "
            f"{len(problems)} distinct problems; ask for fewer"
        )
    ordered = list(problems.values())
    return ordered[: cfg.math_train], ordered[cfg.math_train :]
