"""A small pre-training corpus generated on the fly, deterministic from a seed, with its evaluation sets:

    knowledge.py    biographies of synthetic people; closed-book questions in TriviaQA's schema (memorization)
    arithmetic.py   GSM8k-style word problems, a training split in the corpus and a held-out test split
    writer.py       the folder: corpus JSONL, a mixture, the eval sets as a --bench-dir, a manifest
    vocab.py        the word lists both draw from

`ds-parrots data synth-corpus --out DIR` writes it (ds_parrots/cli/data.py).
"""

from .arithmetic import MathConfig
from .knowledge import KnowledgeConfig
from .writer import write_corpus

__all__ = ["KnowledgeConfig", "MathConfig", "write_corpus"]
