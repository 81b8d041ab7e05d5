import pytest

from ds_parrots.data.tokenizer import SymbolTokenizer, char_tokenizer


def test_specials_take_ids_0_1_2_and_symbols_follow():
    tok = SymbolTokenizer(("a", "b"))
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.encode(["a", "b"]) == [3, 4]
    assert tok.vocab_size == 5 == len(tok.vocab)


def test_char_round_trip():
    tok = char_tokenizer("abc -0123456789")
    text = "cab 0-98"
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode_text(ids) == text


def test_char_tokenizer_drops_repeated_characters():
    assert char_tokenizer("aab").symbols == ("a", "b")


def test_decode_stops_at_eos_and_skips_specials():
    tok = char_tokenizer("xy")
    x, y = tok.encode("xy")
    ids = [tok.bos_id, x, tok.pad_id, y, tok.eos_id, x]
    assert tok.decode_text(ids) == "xy"
    assert tok.decode_text(ids, stop_at_eos=False) == "xyx"
    assert tok.decode([x, 99]) == ["x"]  # out-of-range ids are skipped, not an error


def test_unknown_symbol_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'z'"):
        char_tokenizer("ab").encode("az")


def test_repeated_symbols_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        SymbolTokenizer(("a", "a"))
    with pytest.raises(ValueError, match="<eos>"):
        SymbolTokenizer(("<eos>",))
