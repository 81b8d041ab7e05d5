"""What `reproduce pretrain` leaves behind besides its runs: summary.json (per model: total / active parameters,
knowledge accuracy, math train and test accuracy, the gap), table.md, the figures, and report.md, which gives per
finding the paper's claim, our figure, its numbers and the verdict lines computed from summary.json
(verdicts.py). Everything here is rebuilt from the summary on every invocation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ds_parrots.fileio import write_text_atomic
from ds_parrots.models.counting import human
from ds_parrots.reproduce.report import TABLE, _table
from ds_parrots.reproduce.verdicts import dense_at, verdicts

SUMMARY, REPORT = "summary.json", "report.md"
KIND = "pretrain_accuracy"

# The paper's findings, one per section of the report, with the scores that test them and the figure drawn.
CLAIMS = {
    "knowledge": (
        "Memorization",
        "At equal total parameters, MoEs match dense models on world knowledge: knowledge tracks total "
        "parameters, dense and MoE alike, however few of them are active.",
        ("knowledge",),
        "pretrain_knowledge.png",
    ),
    "math": (
        "Reasoning",
        "Math accuracy tracks width (active parameters); adding experts helps little, so an MoE falls short of "
        "the dense model with the same total parameters.",
        ("math_test",),
        "pretrain_math.png",
    ),
    "commonsense": (
        "Commonsense",
        "At equal total parameters MoEs fall short of dense models on commonsense benchmarks.",
        ("commonsense",),
        "benchmarks.png",
    ),
    "gap": (
        "Generalization gap",
        "MoEs memorize training problems more than they generalize: their train - test gap on math is larger "
        "than the dense models' (beyond about 159M parameters in the paper).",
        ("math_train", "math_test", "math_gap"),
        "pretrain_gap.png",
    ),
}


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def scores_of(eval_results: Optional[dict], gap_results: Optional[dict]) -> tuple[dict, dict]:
    """(scores, documents scored) of one model from its ds-parrots-eval and gap results (None: that step failed).
    knowledge: the world-knowledge category mean (triviaqa alone at the CPU scales); math_test: the math category
    when the evaluation scored one, else the gap's test accuracy; math_train / math_gap: the gap's, averaged
    over its benchmarks; commonsense when scored."""
    scores: dict = {"knowledge": None, "math_train": None, "math_test": None, "math_gap": None}
    counts: dict = {}
    if eval_results is not None:
        categories, tasks = eval_results.get("categories", {}), eval_results.get("tasks", {})
        scores["knowledge"] = categories.get("world_knowledge")
        counts["knowledge"] = sum(t["n"] for t in tasks.values() if t["category"] == "world_knowledge")
        for key in ("commonsense", "math"):
            if key in categories:
                scores["math_test" if key == "math" else key] = categories[key]
    if gap_results is not None:
        gap = list(gap_results["gap"].values())
        scores["math_train"] = _mean([g["train"] for g in gap])
        scores["math_gap"] = _mean([g["gap"] for g in gap])
        if scores["math_test"] is None:
            scores["math_test"] = _mean([g["test"] for g in gap])
        counts["math_train"], counts["math_test"] = (
            sum(g["n_train"] for g in gap),
            sum(g["n_test"] for g in gap),
        )
    return scores, counts


def score_labels(eval_tasks: str, gap_tasks: str, commonsense: bool) -> dict:
    """How the report names each score, with what it measures."""
    gap = gap_tasks.replace(",", ", ")
    knowledge = "triviaqa exact match" if eval_tasks == "triviaqa" else "world-knowledge mean"
    math = f"{gap} test" if eval_tasks == "triviaqa" else "math-category mean"
    labels = {
        "knowledge": f"knowledge accuracy ({knowledge})",
        "math_test": f"math test accuracy ({math})",
        "math_train": f"math train accuracy ({gap} train)",
        "math_gap": f"math train-test gap ({gap})",
    }
    if commonsense:
        labels["commonsense"] = "commonsense accuracy (category mean)"
    return labels


def _pct(value: Optional[float]) -> str:
    return "failed" if value is None else f"{100 * value:.1f}%"


def _seconds(entry: dict) -> str:
    known = [s["seconds"] for s in entry["steps"] if s.get("seconds") is not None]
    return f"{sum(known):.0f}" if known else "?"


def table(summary: dict) -> str:
    """Markdown: one row per model."""
    keys = [
        k
        for k in ("knowledge", "commonsense", "math_train", "math_test", "math_gap")
        if k in summary["score_labels"]
    ]
    names = {"knowledge": "knowledge", "commonsense": "commonsense", "math_train": "math train",
             "math_test": "math test", "math_gap": "gap (train - test)"}  # fmt: skip
    tokens = summary.get("tokens_per_run")
    rows = _table(
        f"Pre-training, scale `{summary['scale']}`: {summary['steps_text']} per model"
        + (f" ({tokens:,} tokens)" if tokens else "")
        + "; "
        + "; ".join(summary["score_labels"][k] for k in keys)
        + ".",
        ["model", "width", "experts", "total params", "active params", "val loss", *(names[k] for k in keys),
         "seconds"],
        "lrrrrr" + "r" * len(keys) + "r",
    )  # fmt: skip
    for m in summary["models"]:
        experts = m["model"]["num_experts"]
        loss = m.get("val_loss")
        cells = [
            m["name"], str(m["model"]["d_model"]), "dense" if experts == 1 else str(experts),
            human(m["params"]["total"]), human(m["params"]["active"]), "-" if loss is None else f"{loss:.3f}",
        ]  # fmt: skip
        for k in keys:
            v = m["scores"].get(k)
            cells.append(("failed" if v is None else f"{v:+.3f}") if k == "math_gap" else _pct(v))
        rows.append("| " + " | ".join([*cells, _seconds(m)]) + " |")
    return "\n".join(rows) + "\n"


def _claim_rows(summary: dict, keys: tuple[str, ...]) -> list[str]:
    """A small table per finding: each model's scores, and for an MoE the dense curve at its total."""
    labels = summary["score_labels"]
    header = ["model", "total params", "active params"]
    for k in keys:
        header += [labels[k].split(" (")[0], "dense at equal total"]
    rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for m in summary["models"]:
        cells = [m["name"], human(m["params"]["total"]), human(m["params"]["active"])]
        for k in keys:
            v = m["scores"].get(k)
            dense = (
                dense_at(summary["models"], k, m["params"]["total"])
                if m["model"]["num_experts"] > 1
                else None
            )
            cells += ["-" if v is None else f"{v:.3f}", "" if dense is None else f"{dense:.3f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def report(summary: dict) -> str:
    """report.md: the setting, then per finding its claim, figure, numbers and verdicts."""
    lines = [
        f"# Reproduce pre-training, scale `{summary['scale']}`",
        "",
        summary["description"] + ".",
        "",
        f"{len(summary['models'])} models, {summary['steps_text']} each"
        + (f" ({summary['tokens_per_run']:,} tokens)" if summary.get("tokens_per_run") else "")
        + f"; seed {summary['seed']}; the steps took {summary['step_seconds']:.0f} s in all. The verdict "
        "lines are computed from summary.json (ds_parrots/reproduce/verdicts.py); the full table is table.md.",
    ]
    by_claim: dict[str, list[dict]] = {}
    for v in summary["verdicts"]:
        by_claim.setdefault(v["claim"], []).append(v)
    for claim, found in by_claim.items():
        title, text, keys, figure = CLAIMS[claim]
        lines += ["", f"## {title}", "", f"Paper: {text}", "", f"![{title}]({figure})", ""]
        lines += _claim_rows(summary, keys)
        lines += [""] + [f"Verdict: {v['text']}" for v in found]
    return "\n".join(lines) + "\n"


def step_seconds(summary: dict) -> float:
    """Seconds of every step, those an earlier invocation ran included: what the whole reproduction cost."""
    steps = summary.get("data_steps", []) + [s for m in summary["models"] for s in m["steps"]]
    return round(sum(s["seconds"] for s in steps if s.get("seconds") is not None), 1)


def write_all(root: Path, summary: dict, figures: bool) -> list[Path]:
    """summary.json (with its verdicts and total seconds computed afresh), table.md, report.md, and the figures
    when asked."""
    summary["step_seconds"] = step_seconds(summary)
    summary["verdicts"] = [{"claim": v.claim, "text": v.text, "holds": v.holds} for v in verdicts(summary)]
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / SUMMARY, json.dumps(summary, indent=2) + "\n")
    write_text_atomic(root / TABLE, table(summary))
    write_text_atomic(root / REPORT, report(summary))
    written = [root / SUMMARY, root / TABLE, root / REPORT]
    if figures:
        from ds_parrots_eval.plot import plot_files

        evals = [Path(m["eval_results"]) for m in summary["models"] if m.get("eval_results")]
        written += plot_files([root / SUMMARY, *[p for p in evals if p.is_file()]], root)
    return written
