"""Sentencepiece: training a tokenizer on local text, loading any .model file, the vocabulary check."""

import json

import numpy as np
import pytest

from ds_parrots.data.tokenizer import (
    SentencePieceTokenizer,
    TokenizerError,
    check_model_vocab,
    train_sentencepiece,
)
from ds_parrots.errors import ConfigError
from text_corpus import VOCAB, english_lines, train_tiny  # noqa: E402


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("tok"))


def test_round_trip_is_exact_even_for_unseen_characters(tok):
    assert tok.vocab_size == VOCAB
    for text in [
        "The parrot said 42 things.",
        "  two  spaces\tand a tab ",
        "line one\nline two",
        "unseen: Ωmega 😀 ∑",
        "",
    ]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
    # Byte fallback: characters the training text never had become byte pieces, not <unk>.
    assert tok.unk_id not in tok.encode("Ωmega 😀")


def test_merges_shorten_common_words(tok):
    # A trained BPE encodes a frequent word in far fewer pieces than characters.
    text = "the of and to"
    assert len(tok.encode(text)) < len(text) / 2


def test_special_ids_follow_llama(tok):
    assert (tok.unk_id, tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2, -1)
    ids = tok.encode("the memory")
    assert ids[0] != tok.bos_id and ids[-1] != tok.eos_id  # encode adds neither


def test_encode_batch_and_documents_agree_with_encode(tok):
    texts = english_lines(20, seed=1)
    singles = [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts) == singles
    tokens, sizes = tok.encode_documents(texts, np.dtype(np.uint16))
    assert tokens.dtype == np.uint16
    assert sizes.tolist() == [len(s) + 1 for s in singles]
    assert tokens.tolist() == [i for s in singles for i in s + [tok.eos_id]]


def test_trains_on_the_named_field_of_jsonl(tmp_path):
    rows = [{"title": "zqxj " * 5, "body": line + " blorptang"} for line in english_lines(300)]
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = SentencePieceTokenizer(
        train_sentencepiece([data], tmp_path / "tok.model", VOCAB, text_field="body")
    )
    assert (tmp_path / "tok.model").is_file() and (tmp_path / "tok.vocab").is_file()  # ".model" not doubled
    # The body's made-up word is frequent enough to merge; the title's was never seen.
    assert len(tok.encode(" blorptang")) <= 2
    assert len(tok.encode(" zqxj")) >= 4


def test_training_refuses_to_overwrite_a_tokenizer(tmp_path):
    train_tiny(tmp_path)
    before = (tmp_path / "tok.model").read_bytes()
    with pytest.raises(TokenizerError, match="already exists"):
        train_sentencepiece([tmp_path / "corpus.txt"], tmp_path / "tok", VOCAB)
    assert (tmp_path / "tok.model").read_bytes() == before


def test_training_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="input files not found: .*missing.txt"):
        train_sentencepiece([tmp_path / "missing.txt"], tmp_path / "tok", VOCAB)
    small = tmp_path / "small.txt"
    small.write_text("a tiny text\n")
    with pytest.raises(TokenizerError, match="could not train on small.txt: .*--vocab-size"):
        train_sentencepiece([small], tmp_path / "tok", 5000)
    assert not (tmp_path / "tok.model").exists()


def test_missing_or_invalid_model_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'.*nope.model' does not exist; pass a sentencepiece .model file"):
        SentencePieceTokenizer(tmp_path / "nope.model")
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "BPE"}}')
    with pytest.raises(TokenizerError, match="is not a sentencepiece model .a Hugging Face tokenizer.json"):
        SentencePieceTokenizer(bad)


def test_model_vocab_must_cover_the_tokenizer():
    check_model_vocab(32000, 32000, "tok.model")
    check_model_vocab(32064, 32000, "tok.model")  # padded: allowed
    with pytest.raises(ConfigError) as e:
        check_model_vocab(1000, 32000, "tok.model")
    msg = str(e.value)
    assert "--model.vocab-size=1000" in msg and "at least 32000" in msg and "'tok.model'" in msg
    assert "\n" not in msg
