"""The one-line verdicts of `reproduce pretrain`, computed from its summary: does the miniature show the paper's
three findings? Each line states the number it read and whether the claim holds by a stated rule, so a reader
can check it against the table, and a run where the claim fails says "no".

- memorization: knowledge accuracy tracks total parameters, dense and MoE alike (Spearman rank correlation over
  every model, and MoE minus the dense model of equal total);
- reasoning: math test accuracy tracks width (Spearman over every model) and MoEs fall below the dense model of
  equal total;
- generalization: the MoEs' train - test gap on math is larger than the dense model's of equal total.

"The dense model of equal total" is the dense curve at the MoE's total parameters: linear in log(total) between
the two dense models around it (the dense model itself where one matches). An MoE outside the dense models'
range has no such partner and is left out of the comparison (the line says how many were compared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Rules:
    """The thresholds the verdicts apply (ours: the paper states its findings without numbers)."""

    min_rho: float = 0.8
    """A score 'tracks' a size when their Spearman rank correlation over the models is at least this."""
    alike: float = 0.05
    """MoE and dense score 'alike' when the mean of MoE minus dense of equal total is within this."""


@dataclass(frozen=True)
class Verdict:
    claim: str
    """Which finding: knowledge, math or gap (commonsense at the paper scale)."""
    text: str
    """The line, number and rule included."""
    holds: Optional[bool]
    """Whether the claim holds by the rule; None when the numbers cannot decide it (too few models scored)."""


def _ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank (as Spearman's rho needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> Optional[float]:
    """Spearman's rank correlation (Pearson's on the ranks); None when either side is constant or n < 2."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman: {len(xs)} x values but {len(ys)} y values")
    if len(xs) < 2:
        return None
    rx, ry = _ranks(list(xs)), _ranks(list(ys))
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def _is_moe(m: dict) -> bool:
    return m["model"]["num_experts"] > 1


def _scored(models: list[dict], key: str) -> list[dict]:
    return [m for m in models if m.get("scores", {}).get(key) is not None]


def dense_at(models: list[dict], key: str, total: int) -> Optional[float]:
    """The dense models' `key` score at `total` parameters, linear in log(total) between the two around it;
    None outside their range."""
    dense = sorted((m["params"]["total"], m["scores"][key]) for m in _scored(models, key) if not _is_moe(m))
    for (t0, s0), (t1, s1) in zip(dense, dense[1:]):
        if t0 <= total <= t1:
            w = (math.log(total) - math.log(t0)) / (math.log(t1) - math.log(t0)) if t1 > t0 else 0.0
            return s0 + w * (s1 - s0)
    if len(dense) == 1 and dense[0][0] == total:
        return dense[0][1]
    return None


def moe_minus_dense(models: list[dict], key: str) -> list[tuple[str, float]]:
    """(MoE name, its score minus the dense curve's at its total) for every scored MoE inside the dense range."""
    out = []
    for m in _scored(models, key):
        if _is_moe(m):
            dense = dense_at(models, key, m["params"]["total"])
            if dense is not None:
                out.append((m["name"], m["scores"][key] - dense))
    return out


def _yes(holds: Optional[bool]) -> str:
    return "n/a" if holds is None else ("yes" if holds else "no")


def tracks(claim: str, models: list[dict], key: str, label: str, size: str, rules: Rules) -> Verdict:
    """'<label> vs <size>, dense and MoE together: Spearman rho ...'; size: total (parameters) or width."""
    scored = _scored(models, key)
    xs = [m["params"]["total"] if size == "total" else m["model"]["d_model"] for m in scored]
    what = "total parameters" if size == "total" else "width"
    rho = spearman(xs, [m["scores"][key] for m in scored])
    head = f"{label} vs {what}, dense and MoE together: "
    if len(scored) < 3:
        return Verdict(claim, head + f"only {len(scored)} model(s) scored (tracks {what}: n/a)", None)
    if rho is None:
        same = scored[0]["scores"][key]
        body = f"Spearman rho undefined, every model scored {same:.3f}"
        if len({x for x in xs}) == 1:
            body = f"Spearman rho undefined, every model has the same {what}"
        return Verdict(claim, head + body + f" (tracks {what}: no)", False)
    holds = rho >= rules.min_rho
    return Verdict(
        claim,
        head + f"Spearman rho {rho:+.2f} over {len(scored)} models (tracks {what}, rho >= "
        f"{rules.min_rho:g}: {_yes(holds)})",
        holds,
    )


def below(claim: str, models: list[dict], key: str, label: str) -> Verdict:
    """'<label>, MoE below dense of equal total: k of n'."""
    diffs = moe_minus_dense(models, key)
    k = sum(d < 0 for _, d in diffs)
    holds = None if not diffs else k == len(diffs)
    return Verdict(
        claim,
        f"{label}, MoE below dense of equal total: {k} of {len(diffs)} (every MoE below: {_yes(holds)})",
        holds,
    )


def _mean(diffs: list[tuple[str, float]]) -> Optional[float]:
    return sum(d for _, d in diffs) / len(diffs) if diffs else None


def alike(claim: str, models: list[dict], key: str, label: str, rules: Rules) -> Verdict:
    """'<label>, MoE minus dense of equal total: mean ...' against the 'alike' rule."""
    diffs = moe_minus_dense(models, key)
    mean = _mean(diffs)
    holds = None if mean is None else abs(mean) <= rules.alike
    shown = "no MoE within the dense range" if mean is None else f"mean {mean:+.3f} over {len(diffs)} MoEs"
    return Verdict(
        claim,
        f"{label}, MoE minus dense of equal total: {shown} (alike, |mean| <= {rules.alike:g}: {_yes(holds)})",
        holds,
    )


def larger(claim: str, models: list[dict], key: str, label: str) -> Verdict:
    """'<label>, MoE minus dense of equal total: +x mean, larger in k of n'."""
    diffs = moe_minus_dense(models, key)
    mean = _mean(diffs)
    holds = None if mean is None else mean > 0
    k = sum(d > 0 for _, d in diffs)
    shown = (
        "no MoE within the dense range"
        if mean is None
        else f"{mean:+.3f} mean, larger in {k} of {len(diffs)}"
    )
    return Verdict(
        claim, f"{label}, MoE minus dense of equal total: {shown} (MoE gap larger: {_yes(holds)})", holds
    )


def verdicts(summary: dict, rules: Rules = Rules()) -> list[Verdict]:
    """Every verdict the summary's scores support, in the report's order."""
    models = summary["models"]
    labels = summary["score_labels"]
    out = [
        tracks("knowledge", models, "knowledge", labels["knowledge"], "total", rules),
        alike("knowledge", models, "knowledge", labels["knowledge"], rules),
        tracks("math", models, "math_test", labels["math_test"], "width", rules),
        below("math", models, "math_test", labels["math_test"]),
    ]
    if "commonsense" in labels:
        out.append(below("commonsense", models, "commonsense", labels["commonsense"]))
    out.append(larger("gap", models, "math_gap", labels["math_gap"]))
    return out
