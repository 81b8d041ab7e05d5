"""Every benchmark reads its public Hugging Face schema from parquet / jsonl / json; bad input names file, row,
field."""

import json

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots_eval.benchmarks.registry import BENCHMARKS, expand, get
from scripted_bench import write_split

# One fixture per benchmark: (name, split, format, rows, expected examples).
# Expected: QA -> (question, answers); multiple choice -> (contexts, continuations, gold); math -> (problem, answer).
TRIVIA = [
    {
        "question": "Which planet is known as the Red Planet?",
        "question_id": "tc_1",
        "question_source": "web",
        "answer": {
            "aliases": ["Mars", "Planet Mars"],
            "normalized_aliases": ["mars", "planet mars"],
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": "mars",
            "type": "WikipediaEntity",
            "value": "Mars",
        },
    },
    {
        "question": "Who painted the Mona Lisa",
        "question_id": "tc_2",
        "question_source": "web",
        "answer": {
            "aliases": ["Leonardo da Vinci", "Leonardo"],
            "normalized_aliases": ["leonardo da vinci"],
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": "leonardo da vinci",
            "type": "WikipediaEntity",
            "value": "Leonardo da Vinci",
        },
    },
]
CWQ_LIST = [
    {
        "ID": "WebQTrn-1",
        "webqsp_ID": "WebQTrn-1",
        "webqsp_question": "q",
        "machine_question": "m",
        "question": "What country bordering France has the capital Madrid?",
        "sparql": "",
        "created": "",
        "compositionality_type": "conjunction",
        "composition_answer": "",
        "answers": [{"answer": "Spain", "answer_id": "m.06mkj", "aliases": ["Kingdom of Spain", "España"]}],
    }
]
CWQ_COLUMNS = [
    {
        "ID": "WebQTrn-2",
        "question": "Which city hosts the team whose mascot is a bear?",
        "answers": {
            "answer": ["Chicago", "Berlin"],
            "answer_id": ["m.1", "m.2"],
            "aliases": [["Chi-town"], []],
        },
    }
]
GSM_ANSWER = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 1,072"
)
MATH_SOLUTION = "We compute $\\cos 30^\\circ$, so the answer is $\\boxed{\\frac{\\sqrt{3}}{2}}$."

FIXTURES = [
    (
        "triviaqa",
        "validation",
        "parquet",
        TRIVIA,
        [
            ("Which planet is known as the Red Planet?", ("Mars", "Planet Mars")),
            ("Who painted the Mona Lisa", ("Leonardo da Vinci", "Leonardo")),
        ],
    ),
    (
        "nq_open",
        "validation",
        "jsonl",
        [
            {
                "question": "who wrote the declaration of independence",
                "answer": ["Thomas Jefferson", "Jefferson"],
            }
        ],
        [("who wrote the declaration of independence", ("Thomas Jefferson", "Jefferson"))],
    ),
    (
        "hotpotqa",
        "validation",
        "parquet",
        [
            {
                "id": "5a8b",
                "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
                "answer": "yes",
                "type": "comparison",
                "level": "hard",
                "supporting_facts": {"title": ["Scott Derrickson"], "sent_id": [0]},
                "context": {"title": ["Ed Wood"], "sentences": [["Ed Wood was an American filmmaker."]]},
            }
        ],
        [("Were Scott Derrickson and Ed Wood of the same nationality?", ("yes",))],
    ),
    (
        "webquestions",
        "test",
        "jsonl",
        [
            {
                "url": "http://www.freebase.com/view/en/france",
                "question": "what is the capital of france?",
                "answers": ["Paris"],
            }
        ],
        [("what is the capital of france?", ("Paris",))],
    ),
    (
        "complexwebquestions",
        "validation",
        "jsonl",
        CWQ_LIST,
        [("What country bordering France has the capital Madrid?", ("Spain", "Kingdom of Spain", "España"))],
    ),
    (
        "arc_easy",
        "test",
        "parquet",
        [
            {
                "id": "Mercury_1",
                "question": "Which gas do plants absorb?",
                "choices": {
                    "text": ["oxygen", "carbon dioxide", "helium", "neon"],
                    "label": ["A", "B", "C", "D"],
                },
                "answerKey": "B",
            }
        ],
        [
            (
                ("Question: Which gas do plants absorb?\nAnswer:",) * 4,
                (" oxygen", " carbon dioxide", " helium", " neon"),
                1,
            )
        ],
    ),
    (
        "arc_challenge",
        "test",
        "jsonl",
        [
            {
                "id": "NYSEDREGENTS_1",
                "question": "Which is a mammal?",
                "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["1", "2", "3", "4"]},
                "answerKey": "2",
            },
            {
                "id": "NYSEDREGENTS_2",
                "question": "Which is a bird?",
                "choices": {"text": ["bat", "penguin", "moth"], "label": ["1", "2", "3"]},
                "answerKey": "B",
            },
        ],
        [
            (("Question: Which is a mammal?\nAnswer:",) * 4, (" shark", " whale", " trout", " eel"), 1),
            (("Question: Which is a bird?\nAnswer:",) * 3, (" bat", " penguin", " moth"), 1),
        ],
    ),
    (
        "commonsense_qa",
        "validation",
        "jsonl",
        [
            {
                "id": "075e",
                "question": "Where would you keep milk cold? ",
                "question_concept": "milk",
                "choices": {
                    "label": ["A", "B", "C", "D", "E"],
                    "text": ["oven", "fridge", "desk", "car", "attic"],
                },
                "answerKey": "B",
            }
        ],
        [
            (
                ("Question: Where would you keep milk cold?\nAnswer:",) * 5,
                (" oven", " fridge", " desk", " car", " attic"),
                1,
            )
        ],
    ),
    (
        "hellaswag",
        "validation",
        "parquet",
        [
            {
                "ind": 24,
                "activity_label": "Roof shingle removal",
                "ctx_a": "A man is sitting on a roof.",
                "ctx_b": "he",
                "ctx": "A man is sitting on a roof. he",
                "source_id": "x",
                "split": "val",
                "split_type": "indomain",
                "label": "3",
                "endings": [
                    "is using wrap.",
                    "is ripping level tiles off.",
                    "is holding a rubik's cube.",
                    "starts pulling up roofing [title] on a roof.",
                ],
            }
        ],
        [
            (
                ("Roof shingle removal: A man is sitting on a roof. He",) * 4,
                (
                    " is using wrap.",
                    " is ripping level tiles off.",
                    " is holding a rubik's cube.",
                    " starts pulling up roofing. on a roof.",
                ),
                3,
            )
        ],
    ),
    (
        "openbookqa",
        "test",
        "jsonl",
        [
            {
                "id": "7-980",
                "question_stem": "The sun is responsible for",
                "choices": {"text": ["puppies learning", "plants sprouting"], "label": ["A", "B"]},
                "answerKey": "B",
            }
        ],
        [(("The sun is responsible for",) * 2, (" puppies learning", " plants sprouting"), 1)],
    ),
    (
        "piqa",
        "validation",
        "jsonl",
        [{"goal": "To open a jar", "sol1": "twist the lid", "sol2": "hit the lid", "label": 0}],
        [(("Question: To open a jar\nAnswer:",) * 2, (" twist the lid", " hit the lid"), 0)],
    ),
    (
        "sciq",
        "test",
        "parquet",
        [
            {
                "question": "What do plants make?",
                "distractor3": "rocks",
                "distractor1": "metal",
                "distractor2": "salt",
                "correct_answer": "sugar",
                "support": " Photosynthesis makes sugar.",
            },
            {
                "question": "What is H2O?",
                "distractor3": "air",
                "distractor1": "fire",
                "distractor2": "earth",
                "correct_answer": "water",
                "support": "",
            },
        ],
        [
            (
                ("Photosynthesis makes sugar.\nQuestion: What do plants make?\nAnswer:",) * 4,
                (" metal", " salt", " rocks", " sugar"),
                3,
            ),
            (("Question: What is H2O?\nAnswer:",) * 4, (" fire", " earth", " air", " water"), 3),
        ],
    ),
    (
        "siqa",
        "validation",
        "jsonl",
        [
            {
                "context": "Tracy lost her keys.",
                "question": "How would Tracy feel?",
                "answerA": "happy",
                "answerB": "worried",
                "answerC": "sleepy",
                "label": "2",
            }
        ],
        [(("Q: Tracy lost her keys. How would Tracy feel?\nA:",) * 3, (" happy", " worried", " sleepy"), 1)],
    ),
    (
        "winogrande",
        "validation",
        "parquet",
        [
            {
                "sentence": "The trophy didn't fit in the suitcase because the _ was too big.",
                "option1": "trophy",
                "option2": "suitcase",
                "answer": "1",
            },
            {
                "sentence": "Sarah lent Maria money since _ was broke.",
                "option1": "Sarah",
                "option2": "Maria",
                "answer": "2",
            },
        ],
        [
            (
                (
                    "The trophy didn't fit in the suitcase because the trophy",
                    "The trophy didn't fit in the suitcase because the suitcase",
                ),
                (" was too big.", " was too big."),
                0,
            ),
            (
                ("Sarah lent Maria money since Sarah", "Sarah lent Maria money since Maria"),
                (" was broke.", " was broke."),
                1,
            ),
        ],
    ),
    (
        "gsm8k",
        "test",
        "jsonl",
        [{"question": "How many clips did Natalia sell?", "answer": GSM_ANSWER}],
        [("How many clips did Natalia sell?", "1072")],
    ),
    (
        "gsm_hard",
        "train",
        "parquet",
        [
            {
                "input": "A farm has 2125 cows times 1000.",
                "code": "def solution(): return 2125000",
                "target": 2125000.0,
            },
            {"input": "Split 13 apples between 2 kids.", "code": "", "target": 6.5},
        ],
        [("A farm has 2125 cows times 1000.", "2125000"), ("Split 13 apples between 2 kids.", "6.5")],
    ),
    (
        "math",
        "test",
        "jsonl",
        [
            {
                "problem": "Compute $\\cos 30^\\circ$.",
                "level": "Level 1",
                "type": "Precalculus",
                "solution": MATH_SOLUTION,
            }
        ],
        [("Compute $\\cos 30^\\circ$.", "\\frac{\\sqrt{3}}{2}")],
    ),
    (
        "svamp",
        "test",
        "parquet",
        [
            {
                "ID": "chal-1",
                "Body": "Jack had 8 pens.",
                "Question": "How many pens does he have after buying 19 more?",
                "Equation": "( 8.0 + 19.0 )",
                "Answer": 27.0,
                "Type": "Addition",
            }
        ],
        [("Jack had 8 pens. How many pens does he have after buying 19 more?", "27")],
    ),
]


def _as_tuple(example):
    if hasattr(example, "answers"):
        return (example.question, example.answers)
    if hasattr(example, "continuations"):
        return (example.contexts, example.continuations, example.gold)
    return (example.problem, example.answer)


@pytest.mark.parametrize("name,split,fmt,rows,expected", FIXTURES, ids=[f[0] for f in FIXTURES])
def test_reads_public_schema(tmp_path, name, split, fmt, rows, expected):
    write_split(tmp_path, name, split, rows, fmt)
    examples = get(name).load(tmp_path, split)
    assert [_as_tuple(e) for e in examples] == expected


def test_every_benchmark_has_a_fixture():
    # minerva_math reads the math files (next test), so it needs no fixture of its own.
    assert {f[0] for f in FIXTURES} | {"minerva_math"} == set(BENCHMARKS)


def test_minerva_math_reads_the_math_folder_and_normalizes_gold(tmp_path):
    write_split(
        tmp_path,
        "math",
        "test",
        [
            {
                "problem": "How far?",
                "level": "Level 2",
                "type": "Algebra",
                "solution": "So it is $\\boxed{10\\text{ km}}$.",
            }
        ],
        "jsonl",
    )
    [plain] = get("math").load(tmp_path, "test")
    [minerva] = get("minerva_math").load(tmp_path, "test")
    assert plain.answer == "10\\text{ km}"
    assert minerva.answer == "10"


def test_complexwebquestions_reads_parquet_struct_of_lists(tmp_path):
    write_split(tmp_path, "complexwebquestions", "validation", CWQ_COLUMNS, "parquet")
    [example] = get("complexwebquestions").load(tmp_path, "validation")
    assert example.answers == ("Chicago", "Chi-town", "Berlin")


def test_hellaswag_without_split_context_uses_ctx(tmp_path):
    write_split(
        tmp_path,
        "hellaswag",
        "validation",
        [{"ctx": "[header] How to bake. A cook", "endings": ["mixes flour.", "flies."], "label": 0}],
        "jsonl",
    )
    [example] = get("hellaswag").load(tmp_path, "validation")
    assert example.contexts == ("How to bake. A cook",) * 2 and example.gold == 0


def test_json_list_and_hf_json_lines_both_read(tmp_path):
    rows = [{"goal": f"goal {i}", "sol1": "a", "sol2": "b", "label": i % 2} for i in range(3)]
    write_split(tmp_path, "piqa", "validation", rows, "json")
    assert [e.gold for e in get("piqa").load(tmp_path, "validation")] == [0, 1, 0]
    # datasets.Dataset.to_json writes JSON lines even under a .json name.
    (tmp_path / "piqa" / "validation.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.gold for e in get("piqa").load(tmp_path, "validation")] == [0, 1, 0]


def test_parquet_is_preferred_over_jsonl(tmp_path):
    write_split(
        tmp_path,
        "piqa",
        "validation",
        [{"goal": "from jsonl", "sol1": "a", "sol2": "b", "label": 0}],
        "jsonl",
    )
    write_split(
        tmp_path,
        "piqa",
        "validation",
        [{"goal": "from parquet", "sol1": "a", "sol2": "b", "label": 1}],
        "parquet",
    )
    [example] = get("piqa").load(tmp_path, "validation")
    assert "from parquet" in example.text


def test_load_selected_rows_in_given_order(tmp_path):
    rows = [{"goal": f"goal {i}", "sol1": "a", "sol2": "b", "label": 0} for i in range(5)]
    for fmt in ("parquet", "jsonl"):
        write_split(tmp_path / fmt, "piqa", "train", rows, fmt)
        got = get("piqa").load(tmp_path / fmt, "train", indices=[3, 0])
        assert [e.text.split("\n")[0] for e in got] == ["Question: goal 3", "Question: goal 0"]


# ---------------------------------------------------------------- errors


def test_missing_field_names_file_row_and_field(tmp_path):
    rows = [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}] * 2 + [
        {"goal": "g", "sol1": "a", "label": 1}
    ]
    path = write_split(tmp_path, "piqa", "validation", rows, "jsonl")
    with pytest.raises(ConfigError) as err:
        get("piqa").load(tmp_path, "validation")
    assert str(err.value) == f"{path} row 3: missing field 'sol2' (PIQA rows need goal, sol1, sol2, label)"


def test_ill_typed_field_names_file_row_and_field(tmp_path):
    rows = [{"ind": 1, "ctx": "c", "endings": ["a", "b"], "label": "first"}]
    path = write_split(tmp_path, "hellaswag", "validation", rows, "parquet")
    with pytest.raises(
        ConfigError, match=rf"{path} row 1: field 'label' should be an integer, got str 'first'"
    ):
        get("hellaswag").load(tmp_path, "validation")


def test_null_field_in_parquet_is_missing(tmp_path):
    rows = [{"question": "q1", "answer": "a"}, {"question": None, "answer": "b"}]
    path = write_split(tmp_path, "hotpotqa", "validation", rows, "parquet")
    with pytest.raises(ConfigError, match=rf"{path} row 2: missing field 'question' \(HotpotQA rows need"):
        get("hotpotqa").load(tmp_path, "validation")


@pytest.mark.parametrize(
    "name,split,row,problem",
    [
        (
            "arc_easy",
            "test",
            {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
            "field 'answerKey' 'E' is not one of the choice labels",
        ),
        (
            "winogrande",
            "validation",
            {"sentence": "no blank here", "option1": "a", "option2": "b", "answer": "1"},
            "field 'sentence' has no '_' blank",
        ),
        (
            "gsm8k",
            "test",
            {"question": "q", "answer": "no final answer"},
            "field 'answer' has no '#### <number>'",
        ),
        ("math", "test", {"problem": "p", "solution": "no box"}, "field 'solution' has no \\\\boxed"),
        (
            "piqa",
            "validation",
            {"goal": "g", "sol1": "a", "sol2": "b", "label": 2},
            "field 'label' points at choice 2",
        ),
        (
            "svamp",
            "test",
            {"Body": "b", "Question": "q", "Answer": "many"},
            "field 'Answer' should be a number",
        ),
        (
            "nq_open",
            "validation",
            {"question": "q", "answer": []},
            "field 'answer' should be a non-empty list",
        ),
    ],
)
def test_bad_values_are_named(tmp_path, name, split, row, problem):
    path = write_split(tmp_path, name, split, [row], "jsonl")
    with pytest.raises(ConfigError, match=rf"^{path} row 1: {problem}"):
        get(name).load(tmp_path, split)


def test_bad_json_line_names_row(tmp_path):
    path = tmp_path / "piqa" / "validation.jsonl"
    path.parent.mkdir()
    path.write_text('{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n{"goal": \n')
    with pytest.raises(ConfigError, match=rf"{path} row 2: not valid JSON"):
        get("piqa").load(tmp_path, "validation")


def test_missing_file_names_expected_paths(tmp_path):
    (tmp_path / "piqa").mkdir()
    with pytest.raises(ConfigError) as err:
        get("piqa").load(tmp_path, "validation")
    message = str(err.value)
    for ext in ("parquet", "jsonl", "json"):
        assert str(tmp_path / "piqa" / f"validation.{ext}") in message


def test_minerva_missing_file_names_both_folders(tmp_path):
    with pytest.raises(ConfigError) as err:
        get("minerva_math").load(tmp_path, "test")
    assert str(tmp_path / "minerva_math" / "test.parquet") in str(err.value)
    assert str(tmp_path / "math" / "test.jsonl") in str(err.value)


def test_missing_bench_dir_is_named(tmp_path):
    with pytest.raises(ConfigError, match="benchmark directory .*nowhere' does not exist"):
        get("piqa").load(tmp_path / "nowhere", "validation")


def test_empty_file_is_an_error(tmp_path):
    path = write_split(tmp_path, "piqa", "validation", [], "jsonl")
    with pytest.raises(ConfigError, match=rf"{path} has no rows"):
        get("piqa").load(tmp_path, "validation")


def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        expand(["piqa", "mmlu"])
    assert "unknown benchmark 'mmlu'" in str(err.value)
    assert all(name in str(err.value) for name in BENCHMARKS)


def test_categories_expand_to_members():
    assert expand(["world_knowledge"]) == [
        "triviaqa",
        "nq_open",
        "hotpotqa",
        "webquestions",
        "complexwebquestions",
    ]
    assert expand(["math"]) == ["gsm8k", "gsm_hard", "math", "minerva_math", "svamp"]
    assert expand(["hendrycks_math", "piqa", "commonsense"])[:3] == ["math", "piqa", "arc_easy"]
    assert expand(["all"]) == list(BENCHMARKS)
