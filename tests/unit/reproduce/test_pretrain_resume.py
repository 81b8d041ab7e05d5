"""The steps of `reproduce pretrain` are resumable: each reuses a finished output ("done before") and redoes an
unfinished one, an output of other settings is refused (the corpus) or redone (the evaluation), and a failure
becomes a failed step instead of an exception. The whole pipeline's rerun is in
tests/integration/reproduce/test_reproduce_pretrain_smoke.py."""

import json
import sys

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.reproduce import pretrain_steps as steps
from ds_parrots.reproduce.pretrain import known_seconds
from ds_parrots.reproduce.pretrain_scales import CorpusSpec

SPEC = CorpusSpec(people=12, math_train=16, math_test=6, vocab_size=400)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain") / "corpus-s0"
    log = folder.parent / "logs" / "data.log"
    made = [
        steps.corpus_step(folder, 0, SPEC, log),
        steps.tokenizer_step(folder, SPEC.vocab_size, log),
        *(steps.prepare_step(folder, s, log) for s in steps.SOURCES),
    ]
    assert [s.status for s in made] == ["ran"] * 4, [s.error for s in made]
    return folder


def test_finished_data_steps_are_done_before(corpus):
    log = corpus.parent / "logs" / "again.log"
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*")}
    again = [
        steps.corpus_step(corpus, 0, SPEC, log),
        steps.tokenizer_step(corpus, SPEC.vocab_size, log),
        *(steps.prepare_step(corpus, s, log) for s in steps.SOURCES),
    ]
    assert [s.status for s in again] == ["done before"] * 4
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*")} == before
    assert sorted(p.name for p in (corpus / "tok").iterdir()) == [
        "spm.model",
        "spm.vocab",
    ]  # no temporary files


def test_a_corpus_of_other_settings_is_refused(corpus):
    with pytest.raises(ConfigError, match="holds a corpus of other settings"):
        steps.corpus_step(corpus, 1, SPEC, corpus.parent / "logs" / "x.log")


def test_token_files_without_their_index_are_prepared_again(corpus, tmp_path):
    import shutil

    copy = tmp_path / "corpus-s0"
    shutil.copytree(corpus, copy)
    (copy / "tokens" / "math.idx").unlink()  # an interrupted prepare: prepare renames the .idx in last
    redo = steps.prepare_step(copy, "math", tmp_path / "p.log")
    assert redo.status == "ran" and (copy / "tokens" / "math.idx").is_file()
    assert (copy / "tokens" / "math.bin").read_bytes() == (corpus / "tokens" / "math.bin").read_bytes()


def test_a_missing_tokenizer_model_is_trained_again(corpus, tmp_path):
    import shutil

    copy = tmp_path / "corpus-s0"
    shutil.copytree(corpus, copy)
    (copy / "tok" / "spm.model").unlink()  # a .vocab alone is no finished tokenizer
    assert steps.tokenizer_step(copy, SPEC.vocab_size, tmp_path / "t.log").status == "ran"
    # the same pieces and scores (the .model also records the temporary paths it was trained under)
    assert (copy / "tok" / "spm.vocab").read_bytes() == (corpus / "tok" / "spm.vocab").read_bytes()


def touch_later(path, than):
    """Give `path` a modification time after `than`'s (file systems may store coarse times)."""
    import os

    t = than.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(t, t))


def test_a_failed_consolidation_is_a_failed_step(tmp_path):
    out = tmp_path / "consolidated" / "r.safetensors"
    step = steps.consolidate_step(tmp_path / "no-run", out, tmp_path / "c.log")
    assert step.status == "failed" and "no-run" in step.error and not out.exists()
    assert "error:" in (tmp_path / "c.log").read_text()


def test_consolidated_weights_older_than_their_run_are_made_again(tmp_path):
    run, out = tmp_path / "run", tmp_path / "consolidated" / "r.safetensors"
    run.mkdir()
    (run / "results.json").write_text("{}")
    out.parent.mkdir()
    out.write_bytes(b"w")
    out.with_suffix(".json").write_text("{}")
    touch_later(out, run / "results.json")
    assert steps.consolidate_step(run, out, tmp_path / "c.log").status == "done before"
    touch_later(run / "results.json", out)  # the run was removed and trained again
    assert (
        steps.consolidate_step(run, out, tmp_path / "c.log").status == "failed"
    )  # tried: it has no checkpoint


FAKE_EVAL = """
import json, pathlib, sys
argv = sys.argv[1:]
calls = pathlib.Path(sys.argv[0]).with_name("calls")
calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
if "--fail" in argv:
    print("scoring went wrong"); sys.exit(3)
pathlib.Path(argv[argv.index("--out") + 1]).write_text(json.dumps({"argv": argv}))
"""


@pytest.fixture
def fake_eval(tmp_path, monkeypatch):
    """ds-parrots-eval replaced by a script that writes its --out (or fails on --fail) and counts its calls."""
    script = tmp_path / "fake_eval.py"
    script.write_text(FAKE_EVAL)
    monkeypatch.setattr(
        steps, "eval_launcher", lambda gpus: ([sys.executable, str(script)], "ds-parrots-eval")
    )
    return tmp_path / "calls"


def test_evaluation_is_reused_only_under_the_same_arguments_and_weights(tmp_path, fake_eval):
    out, log, weights = tmp_path / "eval" / "r.eval.json", tmp_path / "e.log", tmp_path / "w.safetensors"
    weights.write_bytes(b"w")
    first = steps.eval_step("eval", ["ckpt", "--limit", "4"], out, 1, log, weights)
    assert first.status == "ran" and json.loads(out.read_text())["argv"][-1] == str(out)
    assert first.command == f"ds-parrots-eval ckpt --limit 4 --out {out}"
    touch_later(out, weights)
    assert steps.eval_step("eval", ["ckpt", "--limit", "4"], out, 1, log, weights).status == "done before"
    assert fake_eval.read_text() == "x"
    assert steps.eval_step("eval", ["ckpt", "--limit", "8"], out, 1, log, weights).status == "ran"  # settings
    assert fake_eval.read_text() == "xx"
    touch_later(weights, out)  # consolidated again
    assert steps.eval_step("eval", ["ckpt", "--limit", "8"], out, 1, log, weights).status == "ran"
    assert fake_eval.read_text() == "xxx"


def test_a_failed_evaluation_is_a_failed_step_with_its_log(tmp_path, fake_eval):
    out = tmp_path / "eval" / "r.gap.json"
    step = steps.eval_step("gap", ["gap", "ckpt", "--fail"], out, 1, tmp_path / "g.log", tmp_path / "w")
    assert step.status == "failed" and "exit code 3" in step.error and "scoring went wrong" in step.error
    assert not out.exists() and not out.with_suffix(".args.json").exists()


def test_a_rerun_keeps_the_seconds_an_earlier_invocation_measured(tmp_path):
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "data_steps": [{"name": "corpus", "seconds": 1.5}],
                "models": [
                    {
                        "run": "r",
                        "steps": [{"name": "train", "seconds": 9.0}, {"name": "eval", "seconds": None}],
                    }
                ],
            }
        )
    )
    assert known_seconds(tmp_path) == {("data", "corpus"): 1.5, ("r", "train"): 9.0}
    assert known_seconds(tmp_path / "none") == {}
