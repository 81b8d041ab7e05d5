"""The synthetic pre-training corpus (ds_parrots/data/synthetic_corpus): deterministic files, facts stated often
enough and in several wordings, answers stated in the corpus, correct math, disjoint math splits, and a corpus
that the tokenizer trainer, prepare and the mixture loader read. lm-eval reading the eval sets is tested in
tests/integration/eval/test_synthetic_corpus_eval.py."""

import ast
import json
import operator
import re

import pytest

from ds_parrots.cli.main import main as ds_parrots
from ds_parrots.data.synthetic_corpus import KnowledgeConfig, MathConfig, arithmetic, knowledge, write_corpus
from ds_parrots.data.synthetic_corpus.knowledge import ATTRIBUTES

SMALL = dict(knowledge_cfg=KnowledgeConfig(people=40), math_cfg=MathConfig(math_train=60, math_test=30))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_the_same_bytes_and_another_seed_others(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_corpus(tmp_path / name, seed, **SMALL)
    a, b, c = (files(tmp_path / n) for n in "abc")
    assert a == b
    assert set(a) == set(c) and len(a) == 8
    assert [rel for rel in a if a[rel] == c[rel] and rel != "mixture.json"] == []  # (weights may coincide)


@pytest.mark.parametrize(
    "cfg",
    [
        KnowledgeConfig(people=60),
        KnowledgeConfig(people=60, bios_per_person=6, mentions=5, paraphrases=2),  # mentions > wordings
    ],
    ids=["default", "few-wordings"],
)
def test_every_fact_is_in_enough_biographies_and_wordings(cfg):
    people = knowledge.generate(cfg, seed=3)
    bios = [d for d in people.documents if not d.startswith("Question:")]
    for person in people.people:
        for attribute, value in person.facts.items():
            sentences = [t.format(name=person.name, value=value) for t in ATTRIBUTES[attribute][0]]
            docs = [d for d in bios if any(s in d for s in sentences)]
            wordings = {s for s in sentences for d in docs if s in d}
            assert len(docs) >= cfg.mentions, (person.name, attribute)
            assert len(wordings) >= min(cfg.mentions, cfg.paraphrases) >= 2, (person.name, attribute)


def test_every_question_is_answered_in_a_biography_and_only_train_questions_are_documents():
    cfg = KnowledgeConfig(people=50)
    people = knowledge.generate(cfg, seed=0)
    bios = [d for d in people.documents if not d.startswith("Question:")]
    sentences = [s for d in bios for s in re.split(r"(?<=\.) ", d)]
    qa_docs = "\n\n".join(d for d in people.documents if d.startswith("Question:"))
    assert len(people.qa_train) + len(people.qa_eval) == cfg.people * len(ATTRIBUTES)
    assert len(people.qa_train) == round(cfg.people * cfg.qa_train_fraction) * len(ATTRIBUTES)
    for split, in_corpus in ((people.qa_train, True), (people.qa_eval, False)):
        for r in split:
            index = int(r["question_id"].split("_")[1][1:])
            name, value = people.people[index].name, r["answer"]["value"]
            assert name in r["question"]
            assert any(name in s and value in s for s in sentences), r["question"]
            assert (f"Question: {r['question']}?\nAnswer: {value}" in qa_docs) == in_corpus
            assert "," not in value and "." not in value  # lm-eval's triviaqa stops generating at either


def test_names_are_unique_beyond_the_two_part_names():
    import random

    names = knowledge.unique_names(12_000, random.Random(0))  # past the 98 x 94 first x last pairs
    assert len(set(names)) == 12_000
    assert sum(len(n.split()) == 3 for n in names) == 12_000 - 98 * 94


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def arith(expr: str) -> float:
    """The value of an expression of integers and + - * / (nothing else is accepted)."""

    def value(node):
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        assert isinstance(node, ast.Constant) and isinstance(node.value, int), expr
        return node.value

    return value(ast.parse(expr, mode="eval").body)


def expected_answer(template: str, n: dict) -> int:
    """Each template's answer, computed here from the numbers the problem states."""
    if template == "shopping":
        spent = n["a"] * n["p"] + n["b"] * n["q"]
        return (100 if spent < 100 else 200) - spent
    if template == "sharing":
        assert (n["a"] + n["b"]) % n["k"] == 0
    if template == "harvest":
        assert n["r"] * n["c"] * n["k"] % n["b"] == 0
    return {
        "ages": lambda: n["b"] + n["d"] + n["k"] * n["b"],
        "rates": lambda: n["r"] * n["h"] * n["d"] - n["broken"],
        "savings": lambda: n["w"] * n["n"] - n["s"],
        "sharing": lambda: (n["a"] + n["b"]) // n["k"],
        "travel": lambda: n["v"] * n["t"] + n["u"] * n["s"],
        "discount": lambda: n["n"] * (n["p"] - n["p"] * n["pct"] / 100),
        "harvest": lambda: n["r"] * n["c"] * n["k"] // n["b"],
    }[template]()


def test_math_answers_are_right_and_every_step_checks_out():
    train, test = arithmetic.generate(MathConfig(math_train=400, math_test=100), seed=5)
    assert {p.template for p in test} == set(arithmetic.TEMPLATES)
    for p in train + test:
        assert expected_answer(p.template, p.numbers) == p.value > 0, p
        for number in p.numbers.values():
            assert re.search(rf"(?<![\d]){number}(?![\d])", p.question), (number, p.question)
        lines = p.answer.split("\n")
        assert lines[-1] == f"#### {p.value}" and 2 <= len(lines) - 1 <= 4
        steps = re.findall(r"(\S+) = <<([^=]+)=(-?\d+)>>(-?\d+)", p.answer)
        assert len(steps) == len(lines) - 1
        for shown, expr, result, after in steps:
            assert shown == expr and result == after and arith(expr) == int(result), p.answer
        assert int(steps[-1][2]) == p.value


def test_math_test_split_shares_no_problem_with_the_training_split():
    train, test = arithmetic.generate(MathConfig(math_train=1500, math_test=500), seed=0)
    assert len(train) == 1500 and len(test) == 500
    assert not {p.key for p in train} & {p.key for p in test}
    assert len({p.key for p in train + test}) == 2000
    assert not {p.question for p in train} & {p.question for p in test}


def test_the_corpus_holds_the_math_training_problems_and_not_the_test_problems(tmp_path):
    write_corpus(tmp_path / "c", 0, **SMALL)
    docs = {r["text"] for r in read_jsonl(tmp_path / "c" / "corpus" / "math.jsonl")}
    train = read_jsonl(tmp_path / "c" / "eval" / "gsm8k" / "train.jsonl")
    test = read_jsonl(tmp_path / "c" / "eval" / "gsm8k" / "test.jsonl")
    assert docs == {f"Question: {r['question']}\nAnswer: {r['answer']}" for r in train}
    assert all(set(r) == {"question", "answer"} for r in train + test)
    text = "\n".join(docs)
    assert not [r for r in test if r["question"] in text]


def test_tokenizer_training_prepare_and_the_mixture_read_the_corpus(tmp_path):
    from ds_parrots.data.indexed import IndexedDataset
    from ds_parrots.data.mixture import load_mixture
    from ds_parrots.data.prepare import prepare
    from ds_parrots.data.tokenizer import SentencePieceTokenizer, train_sentencepiece

    out = tmp_path / "c"
    written = write_corpus(out, 0, **SMALL)
    inputs = [out / "corpus" / "knowledge.jsonl", out / "corpus" / "math.jsonl"]
    tok = train_sentencepiece(inputs, out / "tok" / "spm", 400, num_threads=1)
    for path in inputs:
        prepare([path], "text", tok, out / "tokens" / path.stem, num_proc=1, verbose=False)
    mixture = load_mixture(str(out / "mixture.json"), data_root=str(out))
    assert [s.name for s in mixture.sources] == ["knowledge", "math"]
    assert mixture.sources[0].weight > mixture.sources[1].weight  # biographies outweigh 60 problems
    sp = SentencePieceTokenizer(tok)
    for source, path in zip(mixture.sources, inputs):
        ds = IndexedDataset(source.path)
        assert len(ds) == written.files[f"corpus/{path.name}"]["rows"]
        assert sp.decode(ds[0].tolist()[:-1]) == read_jsonl(path)[0]["text"]


def synth(*args):
    return ds_parrots(
        ["data", "synth-corpus", "--people", "20", "--math-train", "10", "--math-test", "5", *args]
    )


def test_cli_writes_the_folder_and_replaces_it_only_with_force(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert synth("--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and f"--bench-dir {out}/eval" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["knowledge"]["people"] == 20
    assert manifest["files"]["eval/gsm8k/test.jsonl"]["rows"] == 5
    before = files(out)

    assert synth("--out", str(out), "--seed", "1") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--force" in err and files(out) == before

    assert synth("--out", str(out), "--seed", "1", "--force") == 0
    assert files(out) != before and json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no temporary or old folder left


def test_force_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert synth("--out", str(tmp_path / "mine"), "--force") == 2
    assert "not a folder that 'ds-parrots data synth-corpus' wrote" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--mentions", "5"], "--mentions=5 with --bios-per-person=4"),
        (["--paraphrases", "1"], "--paraphrases=1: needs 2 to 6"),
        (["--qa-train-fraction", "0"], "both need at least 1"),
        (["--math-test", "0"], "--math-test=0"),
    ],
)
def test_bad_sizes_are_one_line_errors_and_write_nothing(tmp_path, capsys, flags, words):
    assert synth("--out", str(tmp_path / "c"), *flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and words in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []
