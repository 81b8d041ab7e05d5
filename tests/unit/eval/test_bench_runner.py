"""run_benchmarks / run_gap with a scripted model: exact scores, category means, few-shot prompts, limit (2 ranks:
tests/integration/eval/test_bench_runner_ranks.py)."""

import re

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots_eval.benchmarks.runner import available_tasks, run_benchmarks
from ds_parrots_eval.gap import run_gap
from scripted_bench import CARS, FEW_SHOT, GSM_TEST, PIQA, TASKS, TRIVIA, scripted_lm, write_fixtures


@pytest.fixture
def bench(tmp_path):
    return write_fixtures(tmp_path / "bench")


def test_scores_equal_expected_fractions(bench):
    report = run_benchmarks(scripted_lm(), TASKS, bench, few_shot=FEW_SHOT, progress=False)
    tasks = report["tasks"]
    assert tasks["triviaqa"]["metrics"] == pytest.approx({"em": 0.5, "f1": (1 + 0.5 + 1 + 0) / 4})
    assert tasks["nq_open"]["metrics"] == pytest.approx({"em": 2 / 3, "f1": (1 + 1 + 2 / 3) / 3})
    assert tasks["piqa"]["metrics"] == {"acc": 0.75, "acc_norm": 0.75}
    assert tasks["winogrande"]["score"] == 0.5
    assert tasks["arc_easy"]["score"] == 0.25
    assert tasks["gsm8k"]["metrics"] == {"acc": 0.75}
    assert tasks["math"]["score"] == 0.5 and tasks["minerva_math"]["score"] == 0.5
    assert {k: (t["metric"], t["n"], t["few_shot"]) for k, t in tasks.items()} == {
        "triviaqa": ("em", 4, 2),
        "nq_open": ("em", 3, 0),
        "piqa": ("acc_norm", 4, 0),
        "winogrande": ("acc_norm", 2, 0),
        "arc_easy": ("acc_norm", 4, 0),
        "gsm8k": ("acc", 4, 8),
        "math": ("acc", 2, 4),
        "minerva_math": ("acc", 2, 4),
    }
    assert report["categories"] == pytest.approx(
        {
            "world_knowledge": (0.5 + 2 / 3) / 2,
            "commonsense": (0.75 + 0.5 + 0.25) / 3,
            "math": (0.75 + 0.5 + 0.5) / 3,
        }
    )


def test_only_categories_that_ran_are_reported(bench):
    report = run_benchmarks(scripted_lm(), ["piqa"], bench, progress=False)
    assert report["categories"] == {"commonsense": 0.75}


def test_qa_prompts_hold_the_same_sampled_exemplars_and_only_the_scored_question(bench):
    lm = scripted_lm()
    run_benchmarks(lm, ["triviaqa"], bench, few_shot={"triviaqa": 2}, progress=False)
    assert len(lm.prompts) == len(TRIVIA)
    exemplar_sets = []
    for prompt, (question, _, _) in zip(lm.prompts, TRIVIA):
        shown = re.findall(r"Question: Train trivia question (\d)\?\nAnswer: TrainAnswer(\d)\n\n", prompt)
        assert len(shown) == 2 and all(q == a for q, a in shown)
        exemplar_sets.append(shown)
        assert prompt.endswith(f"Question: {question}\nAnswer:")
        assert sum(prompt.count(q) for q, _, _ in TRIVIA) == 1
    assert all(s == exemplar_sets[0] for s in exemplar_sets)


def test_gsm8k_prompts_use_the_eight_cot_exemplars_and_skip_a_scored_exemplar(bench):
    lm = scripted_lm()
    report = run_benchmarks(lm, ["gsm8k"], bench, progress=False)
    assert report["tasks"]["gsm8k"]["n"] == 4  # the CARS row is an exemplar, so it is not scored
    for prompt, (question, _, _) in zip(lm.prompts, GSM_TEST):
        assert prompt.count("The answer is") == 8
        assert prompt.startswith("Q: There are 15 trees in the grove.")
        assert prompt.endswith(f"Q: {question}\nA:")


def test_choice_few_shot_prefixes_every_choice_with_the_gold_exemplar(bench):
    lm = scripted_lm()
    run_benchmarks(lm, ["piqa"], bench, few_shot={"piqa": 1}, progress=False)
    exemplar = "Question: piqa train goal\nAnswer: pttwo\n\n"
    assert len(lm.requests) == 2 * len(PIQA)
    assert all(context.startswith(exemplar) for context, _ in lm.requests)


def test_few_shot_keys_may_be_categories_and_task_names_win(bench):
    report = run_benchmarks(
        scripted_lm(),
        ["piqa", "winogrande", "gsm8k"],
        bench,
        few_shot={"piqa": 1, "commonsense": 0, "all": 2},
        progress=False,
    )
    assert {k: t["few_shot"] for k, t in report["tasks"].items()} == {"piqa": 1, "winogrande": 0, "gsm8k": 2}


def test_limit_scores_only_the_first_rows(bench):
    lm = scripted_lm()
    report = run_benchmarks(lm, ["gsm8k", "piqa"], bench, limit=2, progress=False)
    assert report["tasks"]["gsm8k"]["n"] == 2 and report["tasks"]["piqa"]["n"] == 2
    assert [p.endswith(f"Q: {q}\nA:") for p, (q, _, _) in zip(lm.prompts, GSM_TEST)] == [True, True]
    assert report["tasks"]["gsm8k"]["score"] == 1.0 and report["tasks"]["piqa"]["score"] == 1.0


def test_calls_are_batched(bench):
    lm = scripted_lm()
    run_benchmarks(lm, ["gsm8k", "piqa"], bench, batch_size=3, progress=False)
    # gsm8k: 4 prompts in calls of 3 + 1; piqa: 4 items x 2 choices in calls of 6 + 2 requests.
    assert lm.call_sizes == [3, 1, 6, 2]


def test_bad_arguments_are_config_errors(bench):
    lm = scripted_lm()
    with pytest.raises(ConfigError, match="unknown benchmark 'mmlu'"):
        run_benchmarks(lm, ["mmlu"], bench, progress=False)
    with pytest.raises(ConfigError, match="few-shot count given for unknown benchmark 'pika'"):
        run_benchmarks(lm, ["piqa"], bench, few_shot={"pika": 1}, progress=False)
    with pytest.raises(ConfigError, match="8 standard exemplars; few-shot 9"):
        run_benchmarks(lm, ["gsm8k"], bench, few_shot={"gsm8k": 9}, progress=False)
    with pytest.raises(ConfigError, match="few-shot 6 for 'triviaqa' but .* has only 5 rows"):
        run_benchmarks(lm, ["triviaqa"], bench, few_shot={"triviaqa": 6}, progress=False)
    with pytest.raises(ConfigError, match="no 'test' split for benchmark 'svamp'"):
        run_benchmarks(lm, ["svamp"], bench, progress=False)
    with pytest.raises(ConfigError, match="rank 2 is not in a world of size 2"):
        run_benchmarks(lm, ["piqa"], bench, rank=2, world_size=2, progress=False)


def test_available_tasks_lists_all_benchmarks():
    assert len(available_tasks()) == 19 and "minerva_math" in available_tasks()


def test_gap_right_on_train_wrong_on_test_is_one(bench):
    lm = scripted_lm(right_on_test=False)
    report = run_gap(lm, bench, progress=False)
    assert report == {
        "gsm8k": {"train": 1.0, "test": 0.0, "gap": 1.0, "n_train": 2, "n_test": 4, "few_shot": 8},
        "math": {"train": 1.0, "test": 0.0, "gap": 1.0, "n_train": 2, "n_test": 2, "few_shot": 4},
    }
    # The train row equal to a CoT exemplar was never the scored question of a prompt.
    assert not any(p.endswith(f"Q: {CARS}\nA:") for p in lm.prompts)


def test_gap_uses_the_same_scorer_as_the_benchmarks(bench):
    report = run_gap(scripted_lm(), bench, tasks=("gsm8k",), progress=False)
    assert (
        report["gsm8k"]["test"]
        == run_benchmarks(scripted_lm(), ["gsm8k"], bench, progress=False)["tasks"]["gsm8k"]["score"]
        == 0.75
    )
    assert report["gsm8k"]["gap"] == pytest.approx(0.25)


def test_gap_refuses_non_math_and_single_split_tasks(bench):
    with pytest.raises(ConfigError, match="'piqa' is commonsense"):
        run_gap(scripted_lm(), bench, tasks=("piqa",), progress=False)
    with pytest.raises(ConfigError, match="'gsm_hard' has no test split"):
        run_gap(scripted_lm(), bench, tasks=("gsm_hard",), progress=False)
