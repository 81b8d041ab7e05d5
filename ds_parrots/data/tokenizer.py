"""Tokenizers for the synthetic tasks: a fixed symbol vocabulary.

The synthetic tasks need no learned tokenizer: the phone-book is character level (the paper's
choice is ours, see PAPER.md) and the graph tasks use one token per node. Both are a fixed list of
symbols plus three specials. Sentencepiece for pre-training lives beside this (issue 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)


@dataclass(frozen=True)
class SymbolTokenizer:
    """Maps each of a fixed list of symbols to one id; ids 0, 1, 2 are <pad>, <bos>, <eos>."""

    symbols: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vocab = SPECIALS + tuple(self.symbols)
        if len(set(vocab)) != len(vocab):
            dup = sorted({s for s in vocab if vocab.count(s) > 1})
            raise ValueError(f"tokenizer symbols must be unique; repeated: {dup}")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(vocab)})

    @property
    def vocab(self) -> tuple[str, ...]:
        return SPECIALS + tuple(self.symbols)

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.symbols)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    def encode(self, symbols) -> list[int]:
        """Ids of a sequence of symbols (a str is a sequence of characters)."""
        try:
            return [self._index[s] for s in symbols]
        except KeyError as e:
            raise ValueError(f"symbol {e.args[0]!r} is not in this tokenizer's vocabulary") from None

    def decode(self, ids, stop_at_eos: bool = True) -> list[str]:
        """Symbols of a sequence of ids, specials dropped; stops at the first <eos> by default."""
        vocab = self.vocab
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id and stop_at_eos:
                break
            if i < len(SPECIALS) or i >= len(vocab):
                continue
            out.append(vocab[i])
        return out

    def decode_text(self, ids, stop_at_eos: bool = True) -> str:
        """Decoded symbols joined into one string (for character-level vocabularies)."""
        return "".join(self.decode(ids, stop_at_eos))


def char_tokenizer(alphabet: str) -> SymbolTokenizer:
    """A character-level tokenizer over the given characters (order fixes the ids)."""
    return SymbolTokenizer(tuple(dict.fromkeys(alphabet)))
