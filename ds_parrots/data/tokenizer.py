"""Tokenizers: a fixed symbol vocabulary for the synthetic tasks, sentencepiece for pre-training.

The synthetic tasks need no learned tokenizer: the phone-book is character level (the paper's
choice is ours, see PAPER.md) and the graph tasks use one token per node. Both are a fixed list of
symbols plus three specials. Pre-training uses a sentencepiece model, trained here
(`ds-parrots tokenizer train`) or any existing `.model` file (Llama / Mistral id layout: unk 0, bos 1,
eos 2, no pad).
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


# --- Sentencepiece, for pre-training on text ------------------------------------------------------------
#
# Special ids follow Llama / Mistral, so their tokenizer.model files and ours are used the same way:
# <unk>=0, <s> (bos)=1, </s> (eos)=2, and no pad piece (pad_id -1). Pre-training packs documents into
# full sequences separated by eos, so nothing is ever padded; a pad piece would only waste an id.

import os  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal, Optional  # noqa: E402

import numpy as np  # noqa: E402

from ds_parrots.errors import ConfigError, TokenizerError  # noqa: E402

SP_UNK_ID, SP_BOS_ID, SP_EOS_ID, SP_PAD_ID = 0, 1, 2, -1
# Sentencepiece silently drops training lines longer than this; its default, 4192 bytes, would drop most
# documents of a .jsonl corpus, which are one line each.
MAX_LINE_BYTES = 1 << 16


class SentencePieceTokenizer:
    """Any sentencepiece `.model` file: ours from train_sentencepiece, or a Llama / Mistral tokenizer.model."""

    def __init__(self, path: str | Path) -> None:
        import sentencepiece as spm

        self.path = Path(path)
        if not self.path.is_file():
            what = "is a directory" if self.path.is_dir() else "does not exist"
            raise TokenizerError(
                f"tokenizer '{self.path}' {what}; pass a sentencepiece .model file (a Llama or "
                "Mistral tokenizer.model, or train one with 'ds-parrots tokenizer train')"
            )
        try:
            self._sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as e:
            hint = (
                " (a Hugging Face tokenizer.json is not a sentencepiece model; use the tokenizer.model beside it)"
                if self.path.suffix == ".json"
                else ""
            )
            raise TokenizerError(
                f"tokenizer '{self.path}' is not a sentencepiece model{hint}: "
                f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}; "
                "pass a .model file"
            ) from None

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def bos_id(self) -> int:
        """Id of <s>, or -1 when the model has none."""
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        """Id of </s>, or -1 when the model has none."""
        return self._sp.eos_id()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def pad_id(self) -> int:
        """Id of the pad piece, or -1 when the model has none (ours and Llama's)."""
        return self._sp.pad_id()

    def encode(self, text: str) -> list[int]:
        """Ids of one text, without bos or eos."""
        return self._sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str], num_threads: Optional[int] = None) -> list[list[int]]:
        """Ids of each text (sentencepiece's batch encode, in C++ threads; None: its default count)."""
        kw = {} if num_threads is None else {"num_threads": num_threads}
        return self._sp.encode(list(texts), out_type=int, **kw)

    def encode_documents(
        self, texts: Sequence[str], dtype: np.dtype, num_threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every text's ids followed by eos, concatenated into one `dtype` array, and each document's length.

        This is what a token file stores. Sentencepiece's numpy output skips building a Python int per
        token: int lists and then an array measured ~15% slower than this.
        """
        if self.eos_id < 0:
            raise TokenizerError(
                f"tokenizer '{self.path}' has no eos piece; documents in a token file are separated "
                "by eos, so use a tokenizer that defines one"
            )
        arrays = self._sp.encode(
            list(texts), return_type="numpy", add_bos=False, add_eos=True, num_threads=num_threads
        )
        sizes = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        tokens = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype)
        return tokens, sizes

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([int(i) for i in ids])


def check_model_vocab(model_vocab_size: int, tokenizer_vocab_size: int, tokenizer_path: str | Path) -> None:
    """Raise ConfigError when the model's embedding has fewer rows than the tokenizer has ids.

    A larger model vocabulary is fine: it is padding (to a multiple of 64 for fast matmuls, say) whose
    rows no token ever selects.
    """
    if model_vocab_size < tokenizer_vocab_size:
        padded = -(-tokenizer_vocab_size // 64) * 64
        raise ConfigError(
            f"--model.vocab-size={model_vocab_size} is smaller than tokenizer '{tokenizer_path}' with "
            f"{tokenizer_vocab_size} pieces: ids up to {tokenizer_vocab_size - 1} would index past the "
            f"embedding; set --model.vocab-size to at least {tokenizer_vocab_size} (e.g. {padded}, a "
            "multiple of 64)"
        )


def train_sentencepiece(
    inputs: Sequence[str | Path],
    output_prefix: str | Path,
    vocab_size: int,
    model_type: Literal["bpe", "unigram", "char", "word"] = "bpe",
    text_field: str = "text",
    num_threads: Optional[int] = None,
    input_sentence_size: int = 10_000_000,
    character_coverage: float = 0.9995,
    byte_fallback: bool = True,
) -> Path:
    """Train a sentencepiece model on local text files; returns `<output_prefix>.model` (a `.vocab` lies beside).

    `.txt` files go to sentencepiece as they are (one sentence per line); .jsonl / .json / .parquet (and
    compressed files) are read through `text_field` and their lines written to a temporary file first.
    The settings are Llama 2's: identity normalization and kept whitespace (decode(encode(t)) == t),
    digits split, bytes for characters outside the vocabulary, the special ids above.
    `input_sentence_size` lines are sampled from a larger corpus (0: use all); `character_coverage` is the
    share of characters that get their own piece, the rarest fall back to bytes.
    """
    import sentencepiece as spm

    from ds_parrots.data.sources import check_inputs

    prefix = Path(output_prefix)
    if prefix.suffix == ".model":  # "--output tok.model" means the file, not tok.model.model
        prefix = prefix.with_suffix("")
    model = Path(f"{prefix}.model")
    if model.exists():
        raise TokenizerError(
            f"tokenizer '{model}' already exists; delete it or choose another --output (data "
            "prepared with it would no longer match a retrained one)"
        )
    paths = check_inputs(inputs)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{prefix.name}.train-", dir=prefix.parent) as tmp:
        files = [str(p) for p in paths if p.suffix == ".txt"]
        others = [p for p in paths if p.suffix != ".txt"]
        if others:
            files.append(_lines_file(others, text_field, Path(tmp) / "lines.txt"))
        try:
            spm.SentencePieceTrainer.train(
                input=files,
                model_prefix=str(prefix),
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                byte_fallback=byte_fallback,
                num_threads=num_threads or os.cpu_count() or 1,
                input_sentence_size=input_sentence_size,
                shuffle_input_sentence=True,
                unk_id=SP_UNK_ID,
                bos_id=SP_BOS_ID,
                eos_id=SP_EOS_ID,
                pad_id=SP_PAD_ID,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                split_digits=True,
                allow_whitespace_only_pieces=True,
                max_sentence_length=MAX_LINE_BYTES,
                minloglevel=2,
            )
        except RuntimeError as e:
            # "INTERNAL: src/trainer_interface.cc(744) [check] Vocabulary size too high ..." : keep the sentence.
            reason = str(e).strip().splitlines()[-1].rsplit("] ", 1)[-1].rstrip(".")
            names = ", ".join(p.name for p in paths)
            raise TokenizerError(
                f"sentencepiece could not train on {names}: {reason}; change --vocab-size or add text"
            ) from None
    return model


def _lines_file(inputs: list[Path], text_field: str, path: Path) -> str:
    """The inputs' non-empty lines in one file: sentencepiece reads text one sentence (line) per row."""
    from ds_parrots.data.sources import read_documents

    with open(path, "w", encoding="utf-8") as f:
        for texts in read_documents(inputs, text_field, cache_dir=path.parent / "datasets-cache"):
            for text in texts:
                if text:
                    f.writelines(line + "\n" for line in text.splitlines() if line.strip())
    return str(path)
