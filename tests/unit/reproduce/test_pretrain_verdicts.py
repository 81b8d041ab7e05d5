"""The verdicts of `reproduce pretrain`, computed from hand-made summaries: the paper's findings hold in one, fail
in another (the lines then say "no"), and cannot be decided in a third; the report carries exactly the computed
lines; Spearman's rho and the dense curve at an MoE's total."""

import json

import pytest

from ds_parrots.reproduce.pretrain_report import REPORT, SUMMARY, score_labels, scores_of, write_all
from ds_parrots.reproduce.verdicts import Rules, dense_at, spearman, verdicts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def entry(name, width, experts, total, active, knowledge, math_train, math_test):
    return {
        "name": name,
        "run": f"pretrain-{name}-s0",
        "model": {"d_model": width, "num_experts": experts, "n_layers": 4, "top_k": 2, "ffn_dim": width},
        "params": {"total": total, "active": active},
        "scores": {
            "knowledge": knowledge,
            "math_train": math_train,
            "math_test": math_test,
            "math_gap": None if math_train is None else round(math_train - math_test, 6),
        },
        "val_loss": 2.0,
        "steps": [{"name": "train", "status": "ran", "seconds": 10.0}],
    }


def summary(models):
    return {
        "kind": "pretrain_accuracy",
        "scale": "tiny",
        "description": "hand-made",
        "seed": 0,
        "steps_text": "10 steps x 2 sequences x 8 tokens",
        "tokens_per_run": 160,
        "score_labels": score_labels("triviaqa", "gsm8k", commonsense=False),
        "models": models,
    }


DENSE = [
    entry("d32-dense", 32, 1, 100_000, 100_000, 0.10, 0.30, 0.10),
    entry("d48-dense", 48, 1, 200_000, 200_000, 0.20, 0.40, 0.20),
    entry("d64-dense", 64, 1, 400_000, 400_000, 0.40, 0.50, 0.30),
]
# The paper's picture: knowledge on the dense curve, math test below it, a larger gap.
HOLDS = DENSE + [
    entry("d32-e4", 32, 4, 150_000, 110_000, 0.15, 0.45, 0.08),
    entry("d32-e8", 32, 8, 200_000, 110_000, 0.21, 0.50, 0.09),
    entry("d32-e16", 32, 16, 400_000, 110_000, 0.39, 0.55, 0.10),
]
# The opposite: MoEs forget, reason better than dense and generalize better.
FAILS = DENSE + [
    entry("d32-e4", 32, 4, 150_000, 110_000, 0.05, 0.20, 0.25),
    entry("d32-e8", 32, 8, 200_000, 110_000, 0.02, 0.25, 0.30),
    entry("d32-e16", 32, 16, 400_000, 110_000, 0.01, 0.30, 0.35),
]


def texts(models):
    return [v.text for v in verdicts(summary(models))]


def test_the_findings_hold_and_every_line_says_yes():
    # By hand: knowledge ranks x (1, 3.5, 5.5, 2, 3.5, 5.5) against y (1, 3, 6, 2, 4, 5), rho = (16.5 / 17.5)^0.5;
    # d32-e4 (150K) against the dense curve 0.10 + log2(1.5) x 0.10; every dense gap is 0.20, the MoEs' .37 .41 .45.
    found = verdicts(summary(HOLDS))
    assert [v.claim for v in found] == ["knowledge", "knowledge", "math", "math", "gap"]
    assert all(v.holds for v in found), [v.text for v in found]
    assert texts(HOLDS) == [
        "knowledge accuracy (triviaqa exact match) vs total parameters, dense and MoE together: Spearman rho "
        "+0.97 over 6 models (tracks total parameters, rho >= 0.8: yes)",
        "knowledge accuracy (triviaqa exact match), MoE minus dense of equal total: mean -0.003 over 3 MoEs "
        "(alike, |mean| <= 0.05: yes)",
        "math test accuracy (gsm8k test) vs width, dense and MoE together: Spearman rho +0.86 over 6 models "
        "(tracks width, rho >= 0.8: yes)",
        "math test accuracy (gsm8k test), MoE below dense of equal total: 3 of 3 (every MoE below: yes)",
        "math train-test gap (gsm8k), MoE minus dense of equal total: +0.210 mean, larger in 3 of 3 (MoE gap "
        "larger: yes)",
    ]


def test_the_findings_fail_and_the_lines_say_no():
    found = verdicts(summary(FAILS))
    assert [v.holds for v in found] == [False, False, False, False, False]
    lines = texts(FAILS)
    assert lines[0].endswith("(tracks total parameters, rho >= 0.8: no)")
    assert "MoE below dense of equal total: 0 of 3 (every MoE below: no)" in lines[3]
    assert "larger in 0 of 3 (MoE gap larger: no)" in lines[4]


def test_a_single_moe_above_dense_makes_the_below_claim_fail():
    models = [dict(m, scores=dict(m["scores"])) for m in HOLDS]
    models[-1]["scores"]["math_test"] = 0.35  # d32-e16 above the dense d64 (0.30) of its total
    assert texts(models)[3].endswith("2 of 3 (every MoE below: no)")


def test_undecidable_numbers_say_so():
    flat = [dict(m, scores={k: (0.0 if k != "math_gap" else 0.0) for k in m["scores"]}) for m in HOLDS]
    lines = texts(flat)
    assert "Spearman rho undefined, every model scored 0.000 (tracks total parameters: no)" in lines[0]
    crashed = [dict(m, scores={k: None for k in m["scores"]}) for m in HOLDS]
    found = verdicts(summary(crashed))
    assert [v.holds for v in found] == [None] * 5
    assert "only 0 model(s) scored" in found[0].text and "0 of 0 (every MoE below: n/a)" in found[3].text


def test_spearman_ranks_ties_and_refuses_constants():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties take their mean rank: ranks x (1.5, 1.5, 3), y (1, 2, 3) -> rho = 0.866
    assert spearman([5, 5, 7], [1, 2, 3]) == pytest.approx(3**0.5 / 2)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1], [2]) is None


def test_dense_curve_at_an_moe_total_is_log_linear_between_its_neighbours():
    assert dense_at(DENSE, "knowledge", 200_000) == pytest.approx(0.20)  # a dense model of exactly that total
    assert dense_at(DENSE, "knowledge", 200_000 * 2**0.5) == pytest.approx(0.30)  # halfway in log total
    assert dense_at(DENSE, "knowledge", 99_999) is None and dense_at(DENSE, "knowledge", 400_001) is None


def test_stricter_rules_change_the_verdict():
    assert verdicts(summary(HOLDS), Rules(min_rho=0.9))[2].holds is False  # rho 0.86 on width


def test_report_and_summary_carry_the_computed_lines(tmp_path):
    written = write_all(tmp_path, summary(HOLDS), figures=True)
    saved = json.loads((tmp_path / SUMMARY).read_text())
    assert [v["text"] for v in saved["verdicts"]] == texts(saved["models"])
    report = (tmp_path / REPORT).read_text()
    assert [
        line.removeprefix("Verdict: ") for line in report.splitlines() if line.startswith("Verdict: ")
    ] == (texts(HOLDS))
    for section in ("## Memorization", "## Reasoning", "## Generalization gap", "Paper: "):
        assert section in report
    assert "| d32-e8 | 200K | 110K | 0.210 | 0.200 |" in report  # an MoE beside the dense curve at its total
    for png in ("pretrain_knowledge.png", "pretrain_math.png", "pretrain_gap.png"):
        assert (tmp_path / png) in written and (tmp_path / png).read_bytes()[:8] == PNG_SIGNATURE
    assert (
        "| d32-e16 | 32 | 16 | 400K | 110K | 2.000 | 39.0% | 55.0% | 10.0% | +0.450 | 10 |"
        in (tmp_path / "table.md").read_text()
    )


def test_scores_are_read_from_the_eval_and_gap_results():
    evaluated = {
        "categories": {"world_knowledge": 0.25},
        "tasks": {"triviaqa": {"category": "world_knowledge", "n": 300, "score": 0.25}},
    }
    gap = {"gap": {"gsm8k": {"train": 0.5, "test": 0.125, "gap": 0.375, "n_train": 300, "n_test": 200}}}
    scores, counts = scores_of(evaluated, gap)
    assert scores == {"knowledge": 0.25, "math_train": 0.5, "math_test": 0.125, "math_gap": 0.375}
    assert counts == {"knowledge": 300, "math_train": 300, "math_test": 200}
    assert scores_of(None, gap)[0]["knowledge"] is None and scores_of(evaluated, None)[0]["math_test"] is None
