"""`ds-parrots reproduce pretrain` at three scales: which models, which data, how long each trains and how it is
scored.

smoke and tiny generate their own corpus (`ds-parrots data synth-corpus`: biographies scored closed-book as
TriviaQA-schema questions, GSM8k-schema word problems with a held-out test split) and train CPU-sized models;
paper is the paper's 17 models (L=20, 32k vocabulary) on the user's prepared mixtures, scored on the paper's
benchmarks. Each scale's grid holds dense models at several widths and MoEs at one width with several expert
counts: the MoEs share the dense model's width (matched active parameters, within the one extra expert a top-2
MoE routes to) and their totals fall on the dense curve (matched total: the paper's comparison at equal total
parameters), which `tests/unit/reproduce/test_pretrain_grid.py` checks from the parameter counts.

The tiny step budget is a calibration on 2 CPU cores, extrapolated from short runs (bench/RESULTS.md); the
paper's training is its own (60k steps x 512 x 2048 tokens, train.py's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ds_parrots.reproduce.scales import _CPU, ModelSpec, _small


@dataclass(frozen=True)
class CorpusSpec:
    """The generated corpus of the CPU scales (`ds-parrots data synth-corpus` sizes) and its tokenizer."""

    people: int
    """People in the knowledge source (6 facts each)."""
    math_train: int
    """Word problems in the corpus (gsm8k 'train' split)."""
    math_test: int
    """Held-out word problems (gsm8k 'test' split)."""
    vocab_size: int
    """BPE pieces of the sentencepiece tokenizer trained on the corpus (the models' vocabulary)."""


@dataclass(frozen=True)
class PretrainExperiment:
    """`reproduce pretrain` at one scale."""

    description: str
    models: tuple[ModelSpec, ...]
    steps: Optional[int]
    """Optimizer steps of every run. None: train.py's default (the paper's 60,000)."""
    global_batch: Optional[int]
    """Sequences per step. None: train.py's default (the paper's 512)."""
    seq_len: Optional[int]
    """Tokens per training sequence. None: train.py's default (the paper's 2,048)."""
    train_args: tuple[str, ...]
    """Train flags of every run besides the model, data, steps, batch and seed."""
    corpus: Optional[CorpusSpec] = None
    """The generated corpus; None: the user's prepared mixtures (--mixture, --data-root, --tokenizer)."""
    eval_tasks: str = "triviaqa"
    """ds-parrots-eval --tasks of every model (math is scored by the gap, which scores test and train)."""
    gap_tasks: str = "gsm8k"
    """ds-parrots-eval gap --tasks: math benchmarks with a train and a test split."""
    few_shot: Optional[str] = "0"
    """ds-parrots-eval --few-shot; None: the paper's counts. The corpus shows questions without exemplars, so its
    scales score zero-shot."""
    eval_limit: Optional[int] = None
    """ds-parrots-eval --limit (documents per task and split); None: all."""
    max_seq_len: Optional[int] = None
    """--model.max-seq-len: the window evaluation sees. gsm8k generates up to 256 tokens after its prompt, so the
    CPU scales (trained on short sequences) keep a longer window; None: the training sequence length."""

    def tokens(self, steps: int) -> Optional[int]:
        """Training tokens of one run at `steps` (None where a size is train.py's default)."""
        if self.global_batch is None or self.seq_len is None:
            return None
        return steps * self.global_batch * self.seq_len


def paper_model(width: int, experts: int) -> ModelSpec:
    """One model of the paper's pre-training grid, by its preset (L=20, 32k vocabulary, top-2, FFN = d)."""
    preset = f"paper-dense-d{width}" if experts == 1 else f"paper-moe-d{width}-e{experts}"
    return ModelSpec(width, experts, ("--preset", preset))


def _paper_models() -> tuple[ModelSpec, ...]:
    from ds_parrots.sweep.grids import EXPERTS, PRETRAIN_DENSE_WIDTHS, PRETRAIN_MOE_WIDTHS

    dense = tuple(paper_model(d, 1) for d in PRETRAIN_DENSE_WIDTHS)
    return dense + tuple(paper_model(d, e) for d in PRETRAIN_MOE_WIDTHS for e in EXPERTS if e > 1)


# Every CPU run: the synthetic recipes' settings (ZeRO-0, fp32, lr 3e-3 with 5% warmup, no progress bar), a few
# held-out validation sequences, and no checkpoint but the final one (what consolidate reads).
_CPU_PRETRAIN = _CPU + ("--data.val-sequences", "32", "--train.eval-batch", "32")

TINY_LAYERS = 4

# A table, one scale per entry, laid out by hand.
# fmt: off
PRETRAIN: dict[str, PretrainExperiment] = {
    "paper": PretrainExperiment(
        "the paper's pre-training grid: paper-dense-d{256,...,4096} and paper-moe-d{256,512,1024}-e{8,16,32,64} "
        "(L=20, top-2, FFN = d, 32k vocabulary), 60k steps x 512 x 2,048 tokens (63B), AdamW lr 1e-3, 20% "
        "warmup (paper), on the given mixtures; scored on the paper's benchmarks from --bench-dir",
        models=_paper_models(), steps=None, global_batch=None, seq_len=None, train_args=(), corpus=None,
        eval_tasks="all", gap_tasks="gsm8k,hendrycks_math", few_shot=None),
    # Same active parameters: every MoE is d32 (top-2 of FFN = d: one expert more than the dense d32 runs).
    # Same total: d32-e8 ~ dense d48 and d32-e16 ~ dense d64 (within 6%), d32-e4 between d32 and d48.
    "tiny": PretrainExperiment(
        f"a miniature on one CPU: dense widths 32/48/64/96 and width-32 MoEs with 4/8/16 experts (L={TINY_LAYERS}, "
        "top-2, FFN = d, 2,048-piece BPE) on a generated corpus of 400 people's biographies and 1,500 word "
        "problems (+300 held out)",
        models=tuple(_small(d, 1, layers=TINY_LAYERS) for d in (32, 48, 64, 96))
        + tuple(_small(32, e, layers=TINY_LAYERS) for e in (4, 8, 16)),
        steps=1500, global_batch=32, seq_len=128, train_args=_CPU_PRETRAIN,
        corpus=CorpusSpec(people=400, math_train=1500, math_test=300, vocab_size=2048),
        eval_limit=300, max_seq_len=512),
    "smoke": PretrainExperiment(
        "a check of the machinery in under 2 minutes: dense widths 16/32 and a width-16 MoE with 4 experts (L=1), "
        "a 30-person / 40-problem corpus, 30 steps",
        models=(_small(16, 1, layers=1), _small(32, 1, layers=1), _small(16, 4, layers=1)),
        steps=30, global_batch=8, seq_len=64, train_args=_CPU_PRETRAIN,
        corpus=CorpusSpec(people=30, math_train=40, math_test=12, vocab_size=384),
        eval_limit=4, max_seq_len=768),
}
# fmt: on
