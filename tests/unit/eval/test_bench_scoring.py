"""Answer normalization, EM/F1, math answer extraction and equivalence, acc vs acc_norm."""

import signal
import time

import pytest

from ds_parrots_eval.benchmarks.examples import ChoiceExample
from ds_parrots_eval.benchmarks.math_answer import (
    extract_answer,
    is_equiv,
    last_boxed,
    minerva_normalize,
    parse_number,
)
from ds_parrots_eval.benchmarks.normalize import exact_match, normalize_answer, token_f1
from ds_parrots_eval.benchmarks.scoring import score_choice

# ---------------------------------------------------------------- QA


@pytest.mark.parametrize(
    "raw,normalized",
    [
        ("The Beatles", "beatles"),
        ("  An   apple, a day!  ", "apple day"),
        ("U.S.A.", "usa"),
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_takes_best_alias():
    assert exact_match("the planet Mars.", ["Red Planet", "Planet Mars"]) == 1.0
    assert exact_match("Mars", ["Red Planet", "Planet Mars"]) == 0.0


def test_token_f1():
    assert token_f1("Leonardo da Vinci", ["Leonardo da Vinci"]) == 1.0
    # pred {leonardo}, gold {leonardo, da, vinci}: precision 1, recall 1/3 -> F1 0.5
    assert token_f1("Leonardo", ["Leonardo da Vinci"]) == pytest.approx(0.5)
    assert token_f1("Leonardo", ["Michelangelo", "Leonardo da Vinci"]) == pytest.approx(0.5)
    assert token_f1("Paris", ["London"]) == 0.0
    assert token_f1("the", ["a"]) == 1.0  # both normalize to nothing


# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text,answer",
    [
        ("She sold 48 + 24 = 72 clips.\n#### 1,072", "1,072"),
        ("So 5 * 4 = 20. 9 + 20 is 29. The answer is 29.", "29"),
        ("The answer is 3.5.", "3.5"),
        ("The answer is $18. Then more text", "$18"),
        ("first 3 then 4, so the total is -12", "-12"),
        ("Thus $\\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
        ("$\\boxed{1}$ then $\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
        ("... = \\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct.", "$24$"),
        ("no numbers at all", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_last_boxed_balances_nested_braces():
    assert last_boxed("\\boxed{\\frac{a^{2}}{b_{1}}} and more") == "\\frac{a^{2}}{b_{1}}"
    assert last_boxed("cut off inside \\boxed{\\frac{1}{2") is None
    assert last_boxed("\\boxed 5$ done") == "5"
    assert last_boxed("nothing boxed") is None


def test_minerva_normalize():
    assert minerva_normalize("$\\frac{1}{2}$") == "\\frac{1}{2}"
    assert minerva_normalize("10,000 dollars") == "10000"
    assert minerva_normalize("x = \\boxed{5}") == "5"
    assert minerva_normalize("\\text{(C)}") == "(C)"


# ---------------------------------------------------------------- equivalence


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("1,234", "1234"),
        ("1,234,567.0", "1234567"),
        ("-7", "-7.0"),
        ("$18.00", "18"),
        ("\\$18", "18"),
        ("18 dollars", "18"),
        ("25\\%", "25"),
        ("25%", "25"),
        ("3/4", "0.75"),
        ("\\frac{3}{4}", "0.75"),
        ("\\dfrac{3}{4}", "\\frac34"),
        ("-\\frac{2}{3}", "\\frac{-2}{3}"),
        (".5", "0.5"),
        ("0.33333", "1/3"),  # within 1e-4 relative
        ("x = 5", "5"),
        ("5\\text{ cm}", "5"),
        ("10^\\circ", "10"),
        ("\\text{(C)}", "(C)"),
        ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
        ("\\frac{1}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}"),
        ("x^2+2x+1", "(x+1)^2"),
        ("2\\pi r", "r \\cdot 2\\pi"),
        ("[2,5)", "[2, 5)"),
        ("(1, \\frac{1}{2})", "(1,0.5)"),
        ("\\left( 3, 4 \\right)", "(3,4)"),
    ],
)
def test_equivalent(pred, gold):
    assert is_equiv(pred, gold)


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("-3", "3"),
        ("0.3", "1/3"),
        ("72", "720"),
        ("2x", "2"),  # a variable is not a unit
        ("3\\pi", "3"),
        ("x^2+2x", "(x+1)^2"),
        ("[2,5)", "(2,5)"),
        ("(1,2)", "(1,2,3)"),
        ("\\pi", "3.14"),
        ("yes", "no"),
        ("", "0"),
        (None, "5"),
    ],
)
def test_not_equivalent(pred, gold):
    assert not is_equiv(pred, gold)


def test_parse_number_forms():
    assert parse_number("$1,234.50") == pytest.approx(1234.5)
    assert parse_number("-\\frac{3}{4}") == pytest.approx(-0.75)
    assert parse_number("12 apples") == 12
    assert parse_number("1/0") is None
    assert parse_number("x") is None


def test_pathological_and_unsafe_inputs_are_refused_quickly():
    start = time.monotonic()
    assert not is_equiv("9^{9^{9^{9}}}", "1")
    assert not is_equiv("2^{10000000}", "2^{10000001}")
    assert not is_equiv("__import__('os').getcwd()", "1")
    assert not is_equiv("x." + "y" * 5, "1")
    assert not is_equiv("(" * 300 + "1" + ")" * 300, "1")  # too long to attempt
    assert time.monotonic() - start < 5


def test_symbolic_time_limit_leaves_an_outer_alarm_running():
    # pytest-timeout and watchdogs use SIGALRM too: the symbolic check must hand their timer back.
    previous = signal.getitimer(signal.ITIMER_REAL)
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        assert is_equiv("x^2+2x+1", "(x+1)^2")
        assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous)


# ---------------------------------------------------------------- multiple choice


def test_acc_uses_raw_sums_and_acc_norm_divides_by_bytes():
    # A long gold continuation loses on the raw sum but wins per byte.
    example = ChoiceExample("q", ("ctx", "ctx"), (" no", " a much longer answer"), gold=1)
    assert score_choice([-3.0, -6.0], example) == {"acc": 0.0, "acc_norm": 1.0}
    assert score_choice([-3.0, -2.0], example) == {"acc": 1.0, "acc_norm": 1.0}
    assert score_choice([-1.0, -60.0], example) == {"acc": 0.0, "acc_norm": 0.0}


def test_acc_norm_counts_utf8_bytes_not_characters():
    # " é" is 3 bytes, " e" is 2: per byte -3/3 = -1.0 beats -2.2/2 = -1.1; per character (-1.5 vs -1.1) it would not.
    example = ChoiceExample("q", ("c", "c"), (" \u00e9", " e"), gold=0)
    assert score_choice([-3.0, -2.2], example)["acc_norm"] == 1.0
