"""`ds-parrots-eval plot` on a `reproduce pretrain` summary: its three figures, a model whose evaluation failed
left out of the panels it has no score for, and a summary missing its score labels named as such."""

import json

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots_eval.plot import main, read_inputs
from ds_parrots_eval.plot_pretrain import GAP_PNG, KNOWLEDGE_PNG, MATH_PNG

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def entry(width, experts, total, active, **scores):
    keys = ("knowledge", "math_train", "math_test", "math_gap")
    return {
        "name": f"d{width}-" + ("dense" if experts == 1 else f"e{experts}"),
        "model": {"d_model": width, "num_experts": experts},
        "params": {"total": total, "active": active},
        "scores": {k: scores.get(k) for k in keys},
    }


SUMMARY = {
    "kind": "pretrain_accuracy",
    "score_labels": {
        "knowledge": "knowledge accuracy (triviaqa exact match)",
        "math_train": "math train accuracy (gsm8k train)",
        "math_test": "math test accuracy (gsm8k test)",
        "math_gap": "math train-test gap (gsm8k)",
    },
    "models": [
        entry(32, 1, 150_000, 150_000, knowledge=0.1, math_train=0.3, math_test=0.1, math_gap=0.2),
        entry(48, 1, 250_000, 250_000, knowledge=0.2, math_train=0.4, math_test=0.2, math_gap=0.2),
        entry(32, 8, 240_000, 170_000, knowledge=0.2, math_train=0.5, math_test=0.1, math_gap=0.4),
        entry(32, 16, 340_000, 170_000),  # its evaluation failed: no scores
    ],
}


def test_a_pretrain_summary_draws_its_three_figures(tmp_path, capsys):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY))
    assert main([str(path), "--out", str(tmp_path / "figs")]) == 0
    for name in (KNOWLEDGE_PNG, MATH_PNG, GAP_PNG):
        data = (tmp_path / "figs" / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5_000, name
    inputs = read_inputs([path])
    assert [(m.label, sorted(s)) for m, s in inputs.pretrain][-1] == ("d32-e16", [])
    assert inputs.pretrain_labels["math_gap"] == "math train-test gap (gsm8k)"


def test_a_summary_without_score_labels_is_named(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({k: v for k, v in SUMMARY.items() if k != "score_labels"}))
    with pytest.raises(ConfigError, match="missing field 'score_labels'"):
        read_inputs([path])
