"""Parity with lm-evaluation-harness itself: a tiny random GQA MoE and a tied dense model, exported with
export-hf, scored by our ParrotLM and by lm-eval's HFLM on the export (transformers), on the same generated
tasks (lm-eval's arc_easy, hellaswag, piqa, winogrande, gsm8k reading local files), 0-shot and 3-shot:
identical metrics and identical per-document picks / generations."""

import os

import numpy as np
import pytest

from eval_bench_files import export, tiny_model, write_bench
from text_corpus import train_tiny

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
pytestmark = [pytest.mark.slow]  # in-process, but about 15 s per case (lm-eval twice, 256-token generations)
TASKS = ["arc_easy", "hellaswag", "piqa", "winogrande", "gsm8k"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    tok = train_tiny(root)
    return root, tok.path, write_bench(root / "bench", n=6)


def _picks(samples):
    out = []
    for s in samples:
        resp = s["filtered_resps"]
        out.append(int(np.argmax([r[0] for r in resp])) if isinstance(resp[0], (list, tuple)) else resp)
    return out


@pytest.mark.parametrize("kind", ["moe", "dense"])
@pytest.mark.parametrize("shots", [0, 3])
def test_scores_and_picks_equal_lm_eval_hf(setup, kind, shots):
    from lm_eval.models.huggingface import HFLM

    from ds_parrots_eval.harness.run import evaluate_tasks
    from ds_parrots_eval.harness.task_files import plan
    from ds_parrots_eval.harness.tokenizer import from_hf_folder
    from ds_parrots_eval.lm import ParrotLM

    root, tok_model, bench = setup
    model = tiny_model(kind, 400)
    folder = export(model, tok_model, root / f"hf-{kind}-{shots}")
    tasks = plan(TASKS, bench, {t: shots for t in TASKS})
    ours = evaluate_tasks(
        ParrotLM(model, from_hf_folder(folder), batch_size=4, progress=False),
        tasks,
        limit=4,
        log_samples=True,
        bootstrap_iters=0,
    )
    theirs = evaluate_tasks(
        HFLM(pretrained=str(folder), batch_size=4, device="cpu", dtype="float32"),
        tasks,
        limit=4,
        log_samples=True,
        bootstrap_iters=0,
    )
    for task in [t.task for t in tasks]:
        a, b = ours["results"][task], theirs["results"][task]
        for key in [k for k in b if "," in k and "stderr" not in k]:
            assert a[key] == b[key], (task, key, a[key], b[key])
        assert _picks(ours["samples"][task]) == _picks(theirs["samples"][task]), task
        # lm-eval built the same requests for both: same prompts, same few-shot exemplars.
        assert [s["arguments"] for s in ours["samples"][task]] == [
            s["arguments"] for s in theirs["samples"][task]
        ]
    assert ours["configs"]["gsm8k"]["num_fewshot"] == shots
