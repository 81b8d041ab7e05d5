"""`ds-parrots reproduce pretrain --scale smoke` end to end with real steps (corpus, tokenizer, prepare, three
training runs, consolidation, ds-parrots-eval and its gap): every file and figure is written, the verdict lines
are the ones computed from summary.json, it fits its 2-minute budget, and a rerun only rebuilds the report."""

import json
import time

import pytest

from ds_parrots.cli.reproduce import main
from ds_parrots.reproduce.verdicts import verdicts

pytestmark = [pytest.mark.slow]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORT_FILES = ("summary.json", "table.md", "report.md")
FIGURES = ("pretrain_knowledge.png", "pretrain_math.png", "pretrain_gap.png", "benchmarks.png")


def test_pretrain_smoke_end_to_end_then_a_rerun_only_rebuilds_the_report(tmp_path, capsys):
    argv = ["pretrain", "--scale", "smoke", "--out-dir", str(tmp_path)]
    start = time.monotonic()
    assert main(argv) == 0
    seconds = time.monotonic() - start
    out = capsys.readouterr().out
    root = tmp_path / "pretrain-smoke"
    summary = json.loads((root / "summary.json").read_text())
    assert seconds < 120, f"the smoke scale took {seconds:.0f} s, over its 2-minute budget"

    corpus = root / "corpus-s0"
    data_files = ["manifest.json", "mixture.json", "tok/spm.model", "eval/gsm8k/test.jsonl"]
    data_files += [f"tokens/{s}.{ext}" for s in ("knowledge", "math") for ext in ("bin", "idx")]
    assert all((corpus / f).is_file() for f in data_files)
    assert [s["status"] for s in summary["data_steps"]] == ["ran"] * 4
    assert [m["name"] for m in summary["models"]] == ["d16-dense", "d32-dense", "d16-e4"]
    for m in summary["models"]:
        run = m["run"]
        assert [(s["name"], s["status"]) for s in m["steps"]] == [
            (name, "ran") for name in ("train", "consolidate", "eval", "gap")
        ]
        for path in (
            root / run / "results.json",
            root / "consolidated" / f"{run}.safetensors",
            root / "consolidated" / f"{run}.json",
            root / "eval" / f"{run}.eval.json",
            root / "eval" / f"{run}.gap.json",
            root / "logs" / f"{run}.log",
            root / "logs" / f"{run}.gap.log",
        ):
            assert path.is_file(), path
        assert all(0 <= v <= 1 for k, v in m["scores"].items() if k != "math_gap")
        assert m["scores"]["math_gap"] == pytest.approx(m["scores"]["math_train"] - m["scores"]["math_test"])
        assert m["documents"] == {"knowledge": 4, "math_train": 4, "math_test": 4}  # --limit 4 per split
        assert m["val_loss"] > 0
    moe = summary["models"][2]
    assert moe["params"]["total"] > moe["params"]["active"] > summary["models"][0]["params"]["active"]
    for name in REPORT_FILES:
        assert (root / name).is_file()
    for name in FIGURES:
        png = (root / name).read_bytes()
        assert png[:8] == PNG_SIGNATURE and len(png) > 5_000, name

    # The verdicts are those computed from the summary, in summary.json, report.md and the console alike.
    lines = [v.text for v in verdicts(summary)]
    assert [v["text"] for v in summary["verdicts"]] == lines and len(lines) == 5
    report = (root / "report.md").read_text()
    assert [s.removeprefix("Verdict: ") for s in report.splitlines() if s.startswith("Verdict: ")] == lines
    assert all(f"verdict: {line}" in out for line in lines)
    assert "| d16-e4 | 16 | 4 |" in (root / "table.md").read_text()

    # A rerun reuses every step: nothing but the report and figures is written again.
    kept = {
        p: p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and p.name not in REPORT_FILES + FIGURES
    }
    assert main(argv) == 0
    again = json.loads((root / "summary.json").read_text())
    assert {s["status"] for m in again["models"] for s in m["steps"]} == {"done before"}
    assert {s["status"] for s in again["data_steps"]} == {"done before"}
    assert [m["scores"] for m in again["models"]] == [m["scores"] for m in summary["models"]]
    assert [s["seconds"] for s in again["models"][0]["steps"]] == [
        s["seconds"] for s in summary["models"][0]["steps"]
    ]
    changed = {p for p, t in kept.items() if not p.exists() or p.stat().st_mtime_ns != t}
    assert not changed, sorted(map(str, changed))
