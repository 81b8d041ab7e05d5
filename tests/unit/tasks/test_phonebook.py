import re

import numpy as np
import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.tasks.phonebook import PhonebookConfig, PhonebookTask

NUMBER = re.compile(r"^\d{3}-\d{3}-\d{4}$")


def small(**kw) -> PhonebookTask:
    return PhonebookTask(PhonebookConfig(**{"book_size": 500, "first_names": 40, "last_names": 30, **kw}))


def test_3e6_book_has_unique_names_and_builds_fast():
    import time

    t0 = time.perf_counter()
    task = PhonebookTask(PhonebookConfig(book_size=3_000_000))
    assert time.perf_counter() - t0 < 10
    cfg = task.cfg
    # A name is the pair (first, last) of pool indices; distinct pairs of distinct pool strings are distinct names.
    pairs = np.sort(task.pair_index)
    assert len(pairs) == 3_000_000 and (np.diff(pairs) > 0).all()
    assert task.pair_index.min() >= 0 and task.pair_index.max() < cfg.first_names * cfg.last_names
    for pool in (task.first_pool, task.last_pool):
        assert len(set(pool)) == len(pool)
        assert not any(" " in name for name in pool)


def test_full_small_book_names_are_unique_strings():
    task = small(book_size=40 * 30)  # every (first, last) pair is used
    names = [task.entry(i)[0] for i in range(task.train_size())]
    assert len(set(names)) == len(names) == 1200
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", n) for n in names)


def test_numbers_are_formatted_and_digits_uniform():
    task = small(book_size=1200)
    numbers = [task.entry(i)[1] for i in range(1200)]
    assert all(NUMBER.match(n) for n in numbers)
    digits = np.array([[int(c) for c in n.replace("-", "")] for n in numbers])  # 1200 x 10
    counts = np.stack(
        [(digits == d).sum(0) for d in range(10)]
    )  # 10 digits x 10 positions, expected 120 each
    assert np.abs(counts - 120).max() < 6 * np.sqrt(120 * 0.9)


def test_train_example_layout():
    task = small()
    tok = task.tokenizer
    for i in (0, 7, 499):
        name, number = task.entry(i)
        ex = task.train_example(i)
        assert ex.prompt[0] == tok.bos_id
        assert tok.decode_text(ex.prompt) == name + " "
        assert ex.answer[-1] == tok.eos_id and tok.decode_text(ex.answer) == number
        assert len(ex.prompt) + len(ex.answer) <= task.max_seq_len
        assert len(ex.answer) <= task.max_answer_len


def test_max_seq_len_is_reached_by_the_longest_names():
    task = small(book_size=1200)
    assert (
        max(len(task.train_example(i).prompt) + len(task.train_example(i).answer) for i in range(1200))
        == task.max_seq_len
    )


def test_same_seed_same_book_other_seed_other_book():
    a, b, c = small(), small(), small(seed=1)
    entries = lambda t: [t.entry(i) for i in range(t.train_size())]  # noqa: E731
    assert entries(a) == entries(b)
    assert entries(a) != entries(c)
    assert [e.prompt for e in a.eval_examples()] == [e.prompt for e in b.eval_examples()]


def test_eval_queries_are_distinct_book_entries():
    task = small(num_queries=100)
    evals = task.eval_examples()
    assert len(evals) == 100
    assert len({e.meta["entry"] for e in evals}) == 100
    book = {
        tuple(task.train_example(i).prompt): task.train_example(i).answer for i in range(task.train_size())
    }
    for e in evals:
        assert book[tuple(e.prompt)] == e.answer


def test_eval_queries_capped_at_book_size():
    assert len(small(book_size=50, num_queries=1000).eval_examples()) == 50


def test_score_right_and_wrong_generations():
    task = small()
    ex = task.eval_examples()[0]
    eos, pad = task.tokenizer.eos_id, task.tokenizer.pad_id
    right = list(ex.answer)
    assert task.score(ex, right) == {"exact_match": 1.0}
    assert task.score(ex, right + [pad, 5, 6])["exact_match"] == 1.0  # after <eos> is ignored
    zero = task.tokenizer.encode("0")[0]
    wrong_digit = list(right)
    wrong_digit[-2] = zero + (right[-2] - zero + 1) % 10  # last digit + 1
    assert task.score(ex, wrong_digit)["exact_match"] == 0.0
    assert task.score(ex, right[:-1])["exact_match"] == 0.0  # no <eos>
    assert task.score(ex, right[:-1] + [5])["exact_match"] == 0.0  # a 13th character instead of <eos>
    assert task.score(ex, [])["exact_match"] == 0.0
    assert task.score(ex, [eos])["exact_match"] == 0.0


def test_summary_verdict():
    task = small(num_queries=200)
    line = task.summary({"exact_match": 0.931, "num_queries": 200})
    assert line == "phonebook: exact match 93.1% on 200 queries, book 500 entries: PASS (>= 90%)"
    assert task.summary({"exact_match": 0.9})[-len("PASS (>= 90%)") :] == "PASS (>= 90%)"
    assert "FAIL" in task.summary({"exact_match": 0.899})
    assert "FAIL" in small(pass_threshold=0.95).summary({"exact_match": 0.93})


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"book_size": 5_000_000}, "book_size=5000000 exceeds the 4000000"),
        ({"book_size": 0}, "book_size"),
        ({"first_names": 10**6}, "first_names"),
        ({"pass_threshold": 1.5}, "pass_threshold"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_errors_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=re.escape(field)):
        PhonebookConfig(**kw)
