"""Small English-like text and a tiny sentencepiece tokenizer trained on it, shared by the data tests."""

import random

from ds_parrots.data.tokenizer import SentencePieceTokenizer, train_sentencepiece

WORDS = (
    "the of and to in is was for that with as on by at from his her are be this which or an had not but "
    "were they have one all their there been has more when who its will would no if out so up said what "
    "about into than them can only other new some could time these two may then do first any my now such "
    "parrot expert mixture memory reasoning graph path phone book number"
).split()
VOCAB = 400  # 3 specials + 256 byte pieces + characters + merges


def english_lines(n: int, seed: int = 0) -> list[str]:
    """n lines of English-like text: capitalized runs of common words, some digits, one accented word."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 25))]
        lines.append(" ".join(words).capitalize() + f". Page {rng.randint(1, 999)}, café {i % 7}.")
    return lines


def train_tiny(directory, lines=None) -> SentencePieceTokenizer:
    """A VOCAB-piece tokenizer trained on a few KB of english_lines, in `directory`."""
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(lines or english_lines(300)) + "\n")
    return SentencePieceTokenizer(train_sentencepiece([corpus], directory / "tok", VOCAB))
