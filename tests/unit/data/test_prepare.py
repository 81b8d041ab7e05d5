"""prepare: text files -> one Megatron .bin/.idx pair holding each document's ids + eos, in input order."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ds_parrots.data.indexed import IndexedDataset
from ds_parrots.data.prepare import prepare
from ds_parrots.data.sources import open_sources, plan_tasks
from ds_parrots.errors import DataError
from text_corpus import english_lines, train_tiny


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("tok"))


def documents(n: int, seed: int = 0) -> list[str]:
    """n documents of 1-6 lines each, some with non-ASCII characters."""
    lines = english_lines(4 * n, seed)
    return [
        ("\n".join(lines[4 * i : 4 * i + 1 + i % 4]) + (" Ωmega" if i % 5 == 0 else "")) for i in range(n)
    ]


def write_jsonl(path, texts, field="text"):
    path.write_text("".join(json.dumps({"id": i, field: t}) + "\n" for i, t in enumerate(texts)))
    return path


def expected(tok, texts):
    return [tok.encode(t) + [tok.eos_id] for t in texts]


def read_back(prefix):
    ds = IndexedDataset(prefix)
    return [ds[i].tolist() for i in range(len(ds))]


def run(tok, inputs, out, **kw):
    kw.setdefault("num_proc", 2)
    return prepare(inputs, kw.pop("text_field", "text"), tok.path, out, verbose=False, **kw)


def test_jsonl_documents_come_back_in_order(tok, tmp_path):
    texts = documents(200)
    summary = run(tok, [write_jsonl(tmp_path / "a.jsonl", texts)], tmp_path / "out" / "a")
    want = expected(tok, texts)
    assert read_back(tmp_path / "out" / "a") == want
    assert IndexedDataset(tmp_path / "out" / "a").dtype == "uint16"
    assert (summary.documents, summary.tokens, summary.skipped) == (200, sum(map(len, want)), 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin", "a.idx"]  # no temporaries left


def test_txt_is_one_document_per_line(tok, tmp_path):
    lines = english_lines(50)
    lines[20] = " ".join(english_lines(1000))  # ~80 KB: longer than a task and than one read-ahead block
    path = tmp_path / "a.txt"
    path.write_bytes(("\r\n".join(lines[:10]) + "\n" + "\n".join(lines[10:])).encode())  # no final newline
    run(tok, [path], tmp_path / "a")
    assert read_back(tmp_path / "a") == expected(tok, lines)


def test_parquet_row_groups_and_mixed_inputs_keep_input_order(tok, tmp_path):
    texts = documents(120)
    table = pa.table({"id": list(range(80)), "body": texts[:80]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=15)
    write_jsonl(tmp_path / "b.jsonl", texts[80:100], field="body")
    # .json (one array) and compressed files go through Hugging Face datasets.
    (tmp_path / "c.json").write_text(json.dumps([{"body": t} for t in texts[100:110]]))
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"body": t}) + "\n" for t in texts[110:])
    inputs = [tmp_path / n for n in ("a.parquet", "b.jsonl", "c.json", "d.jsonl.gz")]
    run(tok, inputs, tmp_path / "out", text_field="body")
    assert read_back(tmp_path / "out") == expected(tok, texts)


def test_output_does_not_depend_on_the_number_of_processes(tok, tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", documents(400))
    assert len(plan_tasks(open_sources([data]), 2)) > 4  # several tasks, so order across workers matters
    run(tok, [data], tmp_path / "one", num_proc=1)
    run(tok, [data], tmp_path / "two", num_proc=2)
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"two{suffix}").read_bytes()


def test_blank_jsonl_lines_are_not_documents(tok, tmp_path):
    texts = documents(30)
    rows = [json.dumps({"text": t}) for t in texts]
    (tmp_path / "a.jsonl").write_text("\n".join(rows[:10]) + "\n\n  \n" + "\n".join(rows[10:]) + "\n")
    run(tok, [tmp_path / "a.jsonl"], tmp_path / "a")
    assert read_back(tmp_path / "a") == expected(tok, texts)


def test_empty_document_is_an_error_naming_input_and_line(tok, tmp_path):
    texts = documents(30)
    texts[6] = "  \t "
    rows = [json.dumps({"text": t}) for t in texts]
    (tmp_path / "a.jsonl").write_text(
        "\n".join(rows[:2]) + "\n\n" + "\n".join(rows[2:]) + "\n"
    )  # a blank line
    with pytest.raises(
        DataError, match=r"'.*a\.jsonl' line 8: the text is empty or only whitespace; .*--skip-empty"
    ):
        run(tok, [tmp_path / "a.jsonl"], tmp_path / "out" / "a")
    assert list((tmp_path / "out").iterdir()) == []


def test_skip_empty_drops_and_counts_them(tok, tmp_path):
    texts = documents(30)
    texts[3], texts[17] = "", "\n"
    rows = [{"text": t} for t in texts] + [{"text": None}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run(tok, [tmp_path / "a.jsonl"], tmp_path / "a", skip_empty=True)
    kept = [t for i, t in enumerate(texts) if i not in (3, 17)]
    assert (summary.documents, summary.skipped) == (28, 3)
    assert read_back(tmp_path / "a") == expected(tok, kept)


def test_missing_text_field_lists_the_fields(tok, tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", documents(5), field="body")
    with pytest.raises(
        DataError,
        match=r"'.*a\.jsonl' line 1 has no field 'text'; its fields are id, body; "
        r"pass the one holding the text with --text-field",
    ):
        run(tok, [data], tmp_path / "a")
    pq.write_table(pa.table({"content": ["x"], "n": [1]}), tmp_path / "b.parquet")
    with pytest.raises(DataError, match="has no field 'text'; its fields are content, n"):
        run(tok, [tmp_path / "b.parquet"], tmp_path / "b")
    with pytest.raises(DataError, match="field 'n' of input .* holds int64 values, not text"):
        run(tok, [tmp_path / "b.parquet"], tmp_path / "b", text_field="n")


def test_missing_inputs_are_named(tok, tmp_path):
    present = write_jsonl(tmp_path / "here.jsonl", ["hello"])
    with pytest.raises(
        DataError, match=r"input files not found: .*gone\.jsonl, .*lost\.txt; check the --input"
    ):
        run(tok, [present, tmp_path / "gone.jsonl", tmp_path / "lost.txt"], tmp_path / "a")


def test_existing_output_is_kept_unless_overwrite(tok, tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", ["first corpus"])
    run(tok, [data], tmp_path / "a")
    write_jsonl(data, ["second corpus"])
    with pytest.raises(DataError, match="already exists; choose another --output or pass --overwrite"):
        run(tok, [data], tmp_path / "a")
    run(tok, [data], tmp_path / "a", overwrite=True)
    assert read_back(tmp_path / "a") == expected(tok, ["second corpus"])


def test_a_failing_prepare_leaves_the_old_pair_and_no_temporaries(tok, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", ["an older corpus"])
    run(tok, [good], tmp_path / "out" / "a")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    # Many good documents, then a line whose text is a number: a worker fails after others wrote parts.
    texts = documents(400)
    bad = write_jsonl(tmp_path / "bad.jsonl", texts)
    with open(bad, "a") as f:
        f.write(json.dumps({"text": 12345}) + "\n")
    with pytest.raises(
        DataError, match=r"'.*bad\.jsonl' line 401 has a JSON number in field 'text' \(12345\)"
    ):
        run(tok, [bad], tmp_path / "out" / "a", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


# --- the command line --------------------------------------------------------------------------------------
