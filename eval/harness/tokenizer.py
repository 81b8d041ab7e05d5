"""The tokenizer benchmarks are scored with: the `tokenizer.json` that `ds-parrots export-hf` writes, run by
the `tokenizers` library, exactly as `lm_eval --model hf` runs it on the export (transformers'
PreTrainedTokenizerFast is a thin layer over the same object). Using sentencepiece itself would be
equivalent in principle but not byte-for-byte guaranteed, and parity with lm-eval is the point."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError


@dataclass
class HarnessTokenizer:
    """tokenizers.Tokenizer plus the special ids lm-eval asks for."""

    backend: object
    eos_id: int
    bos_id: Optional[int]
    source: str

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def text_of(self, token_id: Optional[int]) -> Optional[str]:
        return None if token_id is None else self.backend.id_to_token(token_id)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)


def _from_json(body: str, eos: Optional[int], bos: Optional[int], source: str) -> HarnessTokenizer:
    from tokenizers import Tokenizer

    if eos is None:
        raise ConfigError(f"{source}: the tokenizer has no end-of-sequence token; lm-eval needs one")
    return HarnessTokenizer(Tokenizer.from_str(body), eos, bos, source)


def from_sentencepiece(path: Path) -> HarnessTokenizer:
    """The export's tokenizer.json, built in memory from a sentencepiece .model (as export-hf builds it)."""
    from ds_parrots.checkpoints.hf_tokenizer import sentencepiece_json
    from ds_parrots.data.tokenizer import SentencePieceTokenizer

    sp = SentencePieceTokenizer(path)
    try:
        body = json.dumps(sentencepiece_json(path), ensure_ascii=False)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _from_json(
        body, sp.eos_id if sp.eos_id >= 0 else None, sp.bos_id if sp.bos_id >= 0 else None, str(path)
    )


def from_hf_folder(folder: Path) -> HarnessTokenizer:
    """A Hugging Face folder's tokenizer.json and the special ids of its config.json."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    body = (folder / "tokenizer.json").read_text(encoding="utf-8")
    return _from_json(
        body, config.get("eos_token_id"), config.get("bos_token_id"), str(folder / "tokenizer.json")
    )


def load_tokenizer(meta: dict, override: Optional[Path], checkpoint: Path) -> HarnessTokenizer:
    """--tokenizer (a .model, a tokenizer.json's folder), else the HF folder's tokenizer.json, else the
    sentencepiece model the run trained with."""
    for candidate in ([override] if override else []) + [Path(checkpoint)]:
        if candidate.is_dir() and (candidate / "tokenizer.json").is_file():
            return from_hf_folder(candidate)
    path = override or meta.get("tokenizer")
    if path is None:
        raise ConfigError(
            f"{checkpoint} records no tokenizer (it was trained without --data.tokenizer); pass "
            "--tokenizer PATH.model, the sentencepiece model its token files were prepared with"
        )
    if not Path(path).is_file():
        if override is None:
            raise ConfigError(
                f"{checkpoint} was trained with tokenizer {path}, which is not there any more; "
                "pass --tokenizer with its new location"
            )
        raise ConfigError(f"--tokenizer {path}: no such file")
    return from_sentencepiece(Path(path))
