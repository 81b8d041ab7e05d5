"""Final-answer extraction from a model's worked solution, and answer equivalence for the math benchmarks.

Equivalence tries, in order: normalized string equality, numeric equality (1e-4 relative tolerance;
fractions, ``\\frac``, thousands separators, ``$``, percent and trailing unit words understood), element-wise
comparison of tuples/intervals, then symbolic equality through sympy on a LaTeX subset we translate ourselves
(``sympy.parsing.latex`` needs antlr, which is not installed). The symbolic step is guarded: long inputs,
unknown macros, huge exponents and anything slower than a time limit count as "not equivalent".
"""

from __future__ import annotations

import contextlib
import keyword
import math
import re
import signal
import threading
import time
from typing import Iterator, Optional

REL_TOL = 1e-4
SYMBOLIC_TIME_LIMIT_S = 2.0
SYMBOLIC_MAX_CHARS = 200

# ---------------------------------------------------------------- extraction


def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces; ``\\boxed 5`` also works."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    rest = text[idx:].split("{", 1)
    head = rest[0]
    if head not in ("\\boxed", "\\fbox") or len(rest) == 1:
        # "\boxed 5$": the argument runs to the next "$" or line end.
        bare = re.match(r"\\(?:boxed|fbox) +([^$\n]+)", text[idx:])
        return bare.group(1).strip() if bare else None
    body, depth = rest[1], 1
    for i, ch in enumerate(body):
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            return body[:i]
    return None  # unbalanced: the generation was cut inside the box


def _after(text: str, marker: str) -> Optional[str]:
    m = re.search(marker + r"\s*:?\s*([^\n]*)", text, flags=re.IGNORECASE)
    if not m:
        return None
    answer = m.group(1).split("I hope it is correct")[0]
    # "... is 18. Next she ..." ends at the sentence; "3.5" keeps its decimal point.
    answer = re.split(r"\.\s", answer)[0].strip().rstrip(".").strip()
    return answer or None


def extract_answer(text: str) -> Optional[str]:
    """The final answer a worked solution commits to, or None.

    Looked for in order: Minerva's "Final Answer: The final answer is X", GSM8k's "#### X", the last
    ``\\boxed{X}``, "The answer is X", and last of all the last number in the text.
    """
    for finder in (lambda t: _after(t, r"final answer is"),
                   lambda t: _after(t, r"####"),
                   last_boxed,
                   lambda t: _after(t, r"the answer is")):
        found = finder(text)
        if found:
            return found
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return numbers[-1].rstrip(",") if numbers else None


# Minerva's normalize_final_answer (Lewkowycz et al. 2022, appendix D): its published substitutions and removals.
_MINERVA_SUBSTITUTIONS = [("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""),
                          ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}")]
_MINERVA_REMOVED = ["square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots",
                    "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters",
                    "meals", "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}",
                    "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ",
                    r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots"]


def minerva_normalize(answer: str) -> str:
    """Minerva's final-answer normalization, so minerva_math scores as in the Minerva paper."""
    answer = answer.split("=")[-1]
    for before, after in _MINERVA_SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for removed in _MINERVA_REMOVED:
        answer = answer.replace(removed, "")
    answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", answer)
    for macro in ("text", "textbf", "overline"):
        answer = re.sub(r"(\\" + macro + r"\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", answer)
    answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", answer)
    answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer


# ---------------------------------------------------------------- normalization

_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\{([^{}]*)\}")


def _clean(answer: str) -> str:
    """Spelling-level normalization that keeps spaces (unit words are found by them)."""
    s = answer.strip().replace("\u2212", "-").replace("\n", " ")
    for token in ("\\!", "\\,", "\\;", "\\:"):
        s = s.replace(token, "")
    s = s.replace("\\ ", " ").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = _WRAPPERS.sub(r" \1", s)
    s = s.strip().rstrip(".").strip()
    # "x = 5" and "k=3": a short left-hand side names the unknown, the right-hand side is the answer.
    if s.count("=") == 1 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1].strip()
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    return s


def canonical(answer: str) -> str:
    """The string form two answers are compared in before any parsing: ``\\dfrac{1}{2}`` -> ``\\frac{1}{2}``."""
    return _clean(answer).replace(" ", "")


_MATH_WORDS = {"pi", "sqrt", "frac", "sin", "cos", "tan", "log", "ln", "exp", "infty", "cdot", "times", "i", "e"}
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?"


def _to_float(text: str) -> Optional[float]:
    text = text.replace(",", "")
    if not re.search(r"\d", text):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_number(answer: str) -> Optional[float]:
    """The answer as a number when it is one: ``-1,234.5``, ``3/4``, ``\\frac{3}{4}``, ``$18 dollars``, ``25%``."""
    s = _clean(answer)
    unit = re.fullmatch(r"(.*?\d\}?)\s*([A-Za-z][A-Za-z .]*)", s)
    if unit and len(unit.group(2).strip()) >= 2 and not set(unit.group(2).lower().split()) & _MATH_WORDS:
        s = unit.group(1)
    s = s.replace(" ", "")
    if re.fullmatch(_NUM, s):
        return _to_float(s)
    frac = (re.fullmatch(rf"({_NUM})/({_NUM})", s)
            or re.fullmatch(rf"([-+]?)\\frac\{{({_NUM})\}}\{{({_NUM})\}}", s))
    if not frac:
        return None
    groups = frac.groups()
    sign = -1.0 if len(groups) == 3 and groups[0] == "-" else 1.0
    num, den = _to_float(groups[-2]), _to_float(groups[-1])
    if num is None or den is None or den == 0:
        return None
    return sign * num / den


def _close(a: complex, b: complex) -> bool:
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), 1e-9)


def _split_top_level(s: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]]


def _as_sequence(s: str) -> Optional[tuple[str, str, list[str]]]:
    """``(1,2]`` -> ("(", "]", ["1", "2"]): tuples, intervals and bare lists compared element-wise."""
    opens, closes = "([{", ")]}"
    if len(s) >= 2 and s[0] in opens and s[-1] in closes and len(_split_top_level(s[1:-1])) > 1:
        return s[0], s[-1], _split_top_level(s[1:-1])
    parts = _split_top_level(s)
    return ("", "", parts) if len(parts) > 1 else None


def is_equiv(prediction: Optional[str], gold: Optional[str]) -> bool:
    """Whether a predicted final answer means the same as the gold answer (string, numeric or symbolic)."""
    if prediction is None or gold is None:
        return False
    p, g = canonical(prediction), canonical(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    pn, gn = parse_number(prediction), parse_number(gold)
    if pn is not None and gn is not None:
        return _close(pn, gn)
    ps, gs = _as_sequence(p), _as_sequence(g)
    if ps or gs:
        if not (ps and gs) or ps[:2] != gs[:2] or len(ps[2]) != len(gs[2]):
            return False
        return all(is_equiv(a, b) for a, b in zip(ps[2], gs[2]))
    # Spaces kept: "\\pi r" must not become the unknown macro "\\pir".
    return symbolic_equal(_clean(prediction), _clean(gold))


# ---------------------------------------------------------------- symbolic


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _Timeout after `seconds` (main thread on POSIX only; elsewhere the input guards must do)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        # Someone else's alarm (pytest-timeout, a watchdog) keeps running with what it had left.
        if previous_delay > 0:
            left = max(previous_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)


_FUNCTIONS = {"sqrt", "sin", "cos", "tan", "log", "exp", "pi", "oo"}
_MACROS = {"\\cdot": "*", "\\times": "*", "\\div": "/", "\\pi": " pi ", "\\infty": " oo ", "\\ln": " log ",
           "\\log": " log ", "\\sin": " sin ", "\\cos": " cos ", "\\tan": " tan ", "\\exp": " exp "}


def _brace_group(s: str, start: int) -> tuple[str, int]:
    """The text inside the brace group opening at s[start] and the index after it."""
    if start >= len(s) or s[start] != "{":
        raise ValueError("expected '{'")
    depth = 0
    for i in range(start, len(s)):
        depth += s[i] == "{"
        depth -= s[i] == "}"
        if depth == 0:
            return s[start + 1:i], i + 1
    raise ValueError("unbalanced braces")


def _latex_to_python(s: str) -> str:
    """Translate the LaTeX subset final answers use into sympy's Python syntax; ValueError otherwise."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            num, i = _brace_group(s, i + 5)
            den, i = _brace_group(s, i)
            out.append(f"(({_latex_to_python(num)})/({_latex_to_python(den)}))")
        elif s.startswith("\\sqrt", i):
            i += 5
            root = "2"
            if i < len(s) and s[i] == "[":
                end = s.index("]", i)
                root, i = _latex_to_python(s[i + 1:end]), end + 1
            arg, i = _brace_group(s, i)
            out.append(f"(({_latex_to_python(arg)})**(1/({root})))")
        else:
            macro = next((m for m in _MACROS if s.startswith(m, i) and not s[i + len(m):i + len(m) + 1].isalpha()),
                         None)
            if macro:
                out.append(_MACROS[macro])
                i += len(macro)
            elif s[i] == "\\":
                raise ValueError(f"unsupported macro at {s[i:i + 12]!r}")
            else:
                out.append({"{": "(", "}": ")", "^": "**"}.get(s[i], s[i]))
                i += 1
    text = "".join(out)
    # What reaches sympy's parser (an eval) is arithmetic on numbers, one-letter symbols and a few functions.
    if not re.fullmatch(r"[0-9A-Za-z+\-*/(). ]*", text) or re.search(r"\.(?!\d)", text):
        raise ValueError("characters outside the arithmetic subset")
    for name in re.findall(r"[A-Za-z]+", text):
        if name not in _FUNCTIONS and (len(name) > 3 or keyword.iskeyword(name)):
            raise ValueError(f"not a math expression: {name!r}")
    return text


def _parse(text: str, evaluate: bool):
    import sympy
    from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    names = {c: sympy.Symbol(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    names.update(sqrt=sympy.sqrt, sin=sympy.sin, cos=sympy.cos, tan=sympy.tan, log=sympy.log, exp=sympy.exp,
                 pi=sympy.pi, oo=sympy.oo)
    transformations = standard_transformations + (implicit_multiplication_application, convert_xor)
    return parse_expr(text, local_dict=names, transformations=transformations, evaluate=evaluate)


def _too_big(expr) -> bool:
    """Exponents beyond 1000 (``9^{9^9}``) or integers past 100 digits would stall sympy: refuse them."""
    import sympy

    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Integer) and abs(int(node)) >= 10 ** 100:
            return True
        if isinstance(node, sympy.Pow) and node.exp.is_number:
            try:
                if abs(complex(node.exp.evalf(15))) > 1000:
                    return True
            except (TypeError, ValueError):
                return True
    return False


def symbolic_equal(a: str, b: str) -> bool:
    """Whether two LaTeX answers are equal as sympy expressions; False if either cannot be judged."""
    if len(a) > SYMBOLIC_MAX_CHARS or len(b) > SYMBOLIC_MAX_CHARS:
        return False
    try:
        ta, tb = _latex_to_python(a), _latex_to_python(b)
    except ValueError:
        return False
    try:
        import sympy

        with _time_limit(SYMBOLIC_TIME_LIMIT_S):
            if _too_big(_parse(ta, evaluate=False)) or _too_big(_parse(tb, evaluate=False)):
                return False
            ea, eb = _parse(ta, evaluate=True), _parse(tb, evaluate=True)
            diff = ea - eb
            if diff == 0:
                return True
            if not (ea.free_symbols or eb.free_symbols):
                va, vb = complex(ea.evalf(30)), complex(eb.evalf(30))
                return all(math.isfinite(v.real) and math.isfinite(v.imag) for v in (va, vb)) and _close(va, vb)
            return sympy.expand(diff) == 0 or sympy.simplify(diff) == 0
    except _Timeout:
        return False
    except Exception:  # noqa: BLE001  (sympy raises many types on odd input; none of them means "equal")
        return False
