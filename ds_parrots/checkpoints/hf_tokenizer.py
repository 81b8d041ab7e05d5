"""Tokenizer files for a Hugging Face export, written without transformers or tokenizers installed.

`transformers.AutoTokenizer` loads a `tokenizer.json` (the `tokenizers` library's format) as it is, in
transformers 4.x and 5.x alike, so that is what we write, by hand:
- sentencepiece (pre-training): the `.model` is copied to `tokenizer.model` (for sentencepiece users, vLLM,
  llama.cpp) and translated into an equivalent `tokenizer.json`: the same pieces and ids, BPE merges ranked
  by piece score (or the unigram scores), byte fallback, and sentencepiece's whitespace handling. We do
  not rely on transformers' own conversion of tokenizer.model: transformers 5's LlamaTokenizer drops the
  dummy-prefix "▁" before a leading space, so " x" would get other ids than in training.
- SymbolTokenizer (synthetic tasks): a WordLevel vocabulary of the symbols, one symbol per character (the
  phone-book) or per whitespace-separated word (graph tasks: "12", "yes"), specials matched anywhere.

Neither adds what training did not see: no <s> for sentencepiece (pre-training packs documents separated
by </s>), <bos> first for the synthetic tasks (every example starts with it).
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ds_parrots.data.tokenizer import SentencePieceTokenizer, SymbolTokenizer

SPACE = "\u2581"  # sentencepiece's visible space "▁"
# SentencePiece.Type and TrainerSpec.ModelType values (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE, WORD, CHAR = 1, 2, 3, 4


@dataclass
class SpModel:
    """The parts of a sentencepiece ModelProto that decide how text becomes ids."""

    pieces: list[tuple[str, float, int]] = field(default_factory=list)
    """(piece, score, type) in id order."""
    model_type: int = UNIGRAM
    byte_fallback: bool = False
    whitespace_as_suffix: bool = False
    normalizer: str = ""
    charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def _fields(buf: bytes):
    """(field number, value) of each field of one protobuf message: ints for varints, bytes for
    length-delimited fields, raw 4/8 bytes for fixed-width ones."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        out = shift = 0
        while True:
            b = buf[pos]
            pos += 1
            out |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return out

    while pos < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            n = varint()
            yield number, buf[pos : pos + n]
            pos += n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            yield number, buf[pos : pos + n]
            pos += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def read_sp_model(path: Path) -> SpModel:
    """Parse a sentencepiece .model (a ModelProto) with a minimal protobuf reader: the protobuf package is
    not a dependency of sentencepiece, and its Python API does not expose the normalizer."""
    m = SpModel()
    for number, value in _fields(Path(path).read_bytes()):
        if number == 1:  # SentencePiece: piece = 1, score = 2 (float), type = 3 (default NORMAL)
            piece, score, kind = "", 0.0, NORMAL
            for n, v in _fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2:
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    kind = v
            m.pieces.append((piece, score, kind))
        elif number == 2:  # TrainerSpec
            for n, v in _fields(value):
                if n == 3:
                    m.model_type = v
                elif n == 24:
                    m.whitespace_as_suffix = bool(v)
                elif n == 35:
                    m.byte_fallback = bool(v)
        elif number == 3:  # NormalizerSpec
            for n, v in _fields(value):
                if n == 1:
                    m.normalizer = v.decode("utf-8")
                elif n == 2:
                    m.charsmap = bytes(v)
                elif n == 3:
                    m.add_dummy_prefix = bool(v)
                elif n == 4:
                    m.remove_extra_whitespaces = bool(v)
                elif n == 5:
                    m.escape_whitespaces = bool(v)
    return m


def _replace(pattern: str, content: str, regex: bool = False) -> dict:
    return {"type": "Replace", "pattern": {"Regex" if regex else "String": pattern}, "content": content}


def _added(token_id: int, content: str, special: bool = True) -> dict:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def _bpe_merges(pieces: list[tuple[str, float, int]]) -> list[list[str]]:
    """Merges that reproduce sentencepiece BPE: it joins the adjacent pair whose concatenation is the
    highest-scoring piece, so every split of a piece into two pieces is a merge ranked by that piece."""
    ids = {p: i for i, (p, _, kind) in enumerate(pieces) if kind == NORMAL}
    merges = []
    for i, (piece, score, kind) in enumerate(pieces):
        if kind != NORMAL or len(piece) < 2:
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in ids and right in ids:
                merges.append((-score, i, ids[left], ids[right], left, right))
    return [[left, right] for *_, left, right in sorted(merges)]


def sentencepiece_json(path: Path) -> dict:
    """`tokenizer.json` for a sentencepiece BPE or unigram model; ValueError for word/char models."""
    m = read_sp_model(path)
    if m.model_type not in (BPE, UNIGRAM):
        raise ValueError(
            f"sentencepiece model type {m.model_type} (word/char) has no tokenizer.json translation "
            "here; only bpe and unigram"
        )
    if m.whitespace_as_suffix or not m.escape_whitespaces:
        raise ValueError(
            "sentencepiece models that treat whitespace as a suffix or keep raw spaces are not supported"
        )
    unk = next((i for i, (_, _, kind) in enumerate(m.pieces) if kind == UNKNOWN), None)
    normalizers = []
    if m.charsmap:  # the normalization rule (nfkc, ...) compiled into the model: tokenizers runs it as is
        normalizers.append(
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(m.charsmap).decode()}
        )
    if m.remove_extra_whitespaces:
        normalizers += [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            _replace(" {2,}", " ", True),
        ]
    if m.add_dummy_prefix:
        normalizers.append({"type": "Prepend", "prepend": SPACE})
    normalizers.append(_replace(" ", SPACE))
    decoders = [_replace(SPACE, " "), {"type": "ByteFallback"}, {"type": "Fuse"}]
    if m.add_dummy_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    if m.model_type == BPE:
        model = {
            "type": "BPE",
            "dropout": None,
            "unk_token": m.pieces[unk][0] if unk is not None else None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": m.byte_fallback,
            "vocab": {p: i for i, (p, _, _) in enumerate(m.pieces)},
            "merges": _bpe_merges(m.pieces),
        }
    else:
        model = {
            "type": "Unigram",
            "unk_id": unk,
            "vocab": [[p, s] for p, s, _ in m.pieces],
            "byte_fallback": m.byte_fallback,
        }
    added = [
        _added(i, p, special=kind != USER_DEFINED)
        for i, (p, _, kind) in enumerate(m.pieces)
        if kind in (UNKNOWN, CONTROL, USER_DEFINED)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": model,
    }


def symbol_json(tok: SymbolTokenizer) -> dict:
    """`tokenizer.json` for a SymbolTokenizer: WordLevel over its vocabulary, <bos> prepended.

    Character vocabularies split text into characters ("Bob 555" -> B o b ' ' 5 5 5) and decode by
    concatenation; others split on whitespace ("3 17 , 17 22") and decode joined by spaces.
    ValueError if neither reading is unambiguous (multi-character symbols beside whitespace symbols)."""
    chars = all(len(s) == 1 for s in tok.symbols)
    if not chars and any(c.isspace() for s in tok.symbols for c in s):
        raise ValueError(
            "the symbols mix multi-character and whitespace symbols; text cannot be split back into "
            "them unambiguously"
        )
    pad, bos, eos = (tok.vocab[i] for i in (tok.pad_id, tok.bos_id, tok.eos_id))
    split = (
        {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": False}
        if chars
        else {"type": "WhitespaceSplit"}
    )
    post = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [tok.bos_id], "tokens": [bos]}},
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, s) for i, s in ((tok.pad_id, pad), (tok.bos_id, bos), (tok.eos_id, eos))],
        "normalizer": None,
        "pre_tokenizer": split,
        "post_processor": post,
        # No decoder joins tokens with spaces: right for graph tokens, Fuse for characters.
        "decoder": {"type": "Fuse"} if chars else None,
        # WordLevel needs an unk token; naming one outside the vocabulary makes unknown text an error.
        "model": {
            "type": "WordLevel",
            "vocab": {s: i for i, s in enumerate(tok.vocab)},
            "unk_token": "<unk>",
        },
    }


def write_tokenizer(tokenizer, out: Path, max_len: int) -> dict:
    """Write the tokenizer files for `tokenizer` (a SentencePieceTokenizer or a SymbolTokenizer) into `out`;
    returns its special ids {bos, eos, pad} for the model config. Raises ValueError for a tokenizer these
    files cannot express."""
    if isinstance(tokenizer, SymbolTokenizer):
        body = symbol_json(tokenizer)
        specials = {
            k: tokenizer.vocab[i]
            for k, i in (("bos", tokenizer.bos_id), ("eos", tokenizer.eos_id), ("pad", tokenizer.pad_id))
        }
        ids = {"bos": tokenizer.bos_id, "eos": tokenizer.eos_id, "pad": tokenizer.pad_id}
        add_bos = True
    elif isinstance(tokenizer, SentencePieceTokenizer):
        body = sentencepiece_json(tokenizer.path)
        shutil.copyfile(tokenizer.path, out / "tokenizer.model")
        pieces = [p for p, _, _ in read_sp_model(tokenizer.path).pieces]
        ids = {
            "bos": tokenizer.bos_id,
            "eos": tokenizer.eos_id,
            "pad": tokenizer.pad_id,
            "unk": tokenizer.unk_id,
        }
        ids = {k: (i if i >= 0 else None) for k, i in ids.items()}
        specials = {k: pieces[i] for k, i in ids.items() if i is not None}
        add_bos = False
    else:
        raise TypeError(f"cannot export a tokenizer of type {type(tokenizer).__name__}")
    (out / "tokenizer.json").write_text(
        json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    names = {f"{k}_token": v for k, v in specials.items()}
    (out / "special_tokens_map.json").write_text(json.dumps(names, ensure_ascii=False, indent=2) + "\n")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **names,
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    return {k: ids.get(k) for k in ("bos", "eos", "pad")}
