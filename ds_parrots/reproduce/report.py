"""What a reproduction leaves behind: summary.json (the schema `ds-parrots-eval plot` reads), table.md, and the
figure. Summaries are rewritten after every model, so an interrupted reproduction still shows what it found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ds_parrots.models.counting import human

SUMMARY, TABLE = "summary.json", "table.md"


def model_entry(name: str, model, params: dict) -> dict:
    """The fields plot reads from every kind of result file: model.d_model / num_experts, params.total / active."""
    return {
        "name": name,
        "model": {
            "d_model": model.d_model,
            "n_layers": model.n_layers,
            "num_experts": model.num_experts,
            "top_k": model.top_k,
            "ffn_dim": model.ffn,
        },
        "params": {"total": params["total"], "active": params["active"]},
    }


def probe_entry(
    probe, book_size: Optional[int], steps: int, metrics: dict, passed: Optional[bool], run_dir: Path
) -> dict:
    return {
        **({"book_size": book_size} if book_size is not None else {}),
        "run": probe.run,
        "status": probe.status,
        **metrics,
        **({} if passed is None else {"passed": passed}),
        "steps": steps,
        "seconds": probe.seconds,
        "run_dir": str(run_dir),
        "log": probe.log,
    }


def known_seconds(root: Path) -> dict[str, float]:
    """Wall time of every run an earlier invocation recorded in its summary (a rerun skips those runs)."""
    path = root / SUMMARY
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    probes = [p for m in data.get("models", []) for p in m.get("probes", [])] + data.get("runs", [])
    return {p["run"]: p["seconds"] for p in probes if p.get("seconds") is not None}


def _capacity_text(entry: dict, smallest: int) -> str:
    cap, bound = entry["capacity"], entry["bound"]
    return {
        "exact": lambda: f"{cap:,}",
        "at_least": lambda: f">= {cap:,}",
        "below": lambda: f"< {smallest:,}",
        "error": lambda: "error (a probe crashed)",
    }[bound]()


def _seconds(entries: list[dict]) -> str:
    known = [e["seconds"] for e in entries if e.get("seconds") is not None]
    return f"{sum(known):.0f}" if known else "?"


def _table(caption: str, columns: list[str], align: str) -> list[str]:
    """A caption and a markdown table header; `align`: l or r per column."""
    return [
        caption,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|",
    ]


def phonebook_table(summary: dict) -> str:
    """Markdown: one row per model; probes in the order the bisection ran them."""
    rows = _table(
        f"Phone-book capacity, scale `{summary['scale']}`: the largest book answered exactly on >= "
        f"{100 * summary['pass_threshold']:g}% of min(1000, book) queries; books {summary['ladder']}, "
        f"{summary['epochs']:g} epochs per book ({summary['steps_rule']}).",
        ["model", "total params", "active params", "capacity", "probes (book: exact match)", "seconds"],
        "lrrrlr",
    )
    for m in summary["models"]:
        probes = ", ".join(
            f"{p['book_size']:,}: failed to run"
            if p["status"] == "failed"
            else f"{p['book_size']:,}: {100 * p['exact_match']:.1f}% {'pass' if p['passed'] else 'fail'}"
            for p in m["probes"]
        )
        rows.append(
            f"| {m['name']} | {human(m['params']['total'])} | {human(m['params']['active'])} | "
            f"{_capacity_text(m, min(summary['ladder']))} | {probes} | {_seconds(m['probes'])} |"
        )
    return "\n".join(rows) + "\n"


def shortest_path_table(summary: dict) -> str:
    rows = _table(
        f"Shortest path, scale `{summary['scale']}`: share of held-out queries answered with a valid "
        f"shortest path (and exact match of the canonical one), {summary['epochs']:g} epochs of "
        f"{summary['num_train']:,} examples.",
        [
            "model",
            "width",
            "experts",
            "total params",
            "active params",
            "valid shortest path",
            "exact match",
            "seconds",
        ],
        "lrrrrrrr",
    )
    for r in summary["runs"]:
        scores = (
            ("failed to run", "")
            if r["accuracy"] is None
            else (f"{100 * r['accuracy']:.1f}%", f"{100 * r['exact_match']:.1f}%")
        )
        experts = r["model"]["num_experts"]
        rows.append(
            f"| {r['name']} | {r['model']['d_model']} | {'dense' if experts == 1 else experts} | "
            f"{human(r['params']['total'])} | {human(r['params']['active'])} | {scores[0]} | {scores[1]} | "
            f"{_seconds([r])} |"
        )
    return "\n".join(rows) + "\n"


def write_summary(root: Path, summary: dict) -> tuple[Path, Path]:
    """summary.json and table.md under root."""
    root.mkdir(parents=True, exist_ok=True)
    table = (
        phonebook_table(summary) if summary["kind"] == "phonebook_capacity" else shortest_path_table(summary)
    )
    (root / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    (root / TABLE).write_text(table)
    return root / SUMMARY, root / TABLE


def draw(root: Path) -> list[Path]:
    """The figure of the summary, by the same code as `ds-parrots-eval plot summary.json`."""
    from ds_parrots_eval.plot import plot_files

    return plot_files([root / SUMMARY], root)
