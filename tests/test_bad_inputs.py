"""The bad-input catalogue: every kind of user-supplied input, tried with malformed values, gives one line
`error: ...` naming the input and the fix, exit code 2, no traceback, and writes nothing. docs/errors.md
lists the cases and their messages (regenerate it with DS_PARROTS_WRITE_ERRORS_DOC=1 python -m pytest
tests/test_bad_inputs.py).

Commands run in-process (their `main(argv)`, as the console scripts call it) in a fresh tmp_path that is
also the working directory, so default outputs (runs/, sweeps/, ...) would land there and be seen.
Checkpoint files that carry a pickled payload (`os.system("touch pwned")`) must be refused unexecuted."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "errors.md"
TINY = ("--preset", "tiny-dense")


# ---------------------------------------------------------------------------------------------------
# Inputs: writers of good files that the cases then damage.
# ---------------------------------------------------------------------------------------------------

class _Payload:
    """Pickles into a call of os.system: loading it with code execution enabled creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_run(run_dir: Path, model_flags=TINY, payload: bool = False, step: int = 2) -> Path:
    """A phonebook run directory as training leaves it (config.json, checkpoints/latest, one step of
    DeepSpeed ZeRO-0 files), built without DeepSpeed; `payload` plants the pickle in the model states."""
    from ds_parrots.config import MoEConfig
    from ds_parrots.training.setup import run_config_dict
    from ds_parrots.models import build_model
    from ds_parrots.training.recipes.synthetic import task_model
    from ds_parrots.tasks import build_task
    from ds_parrots.cli.train import parse

    run = parse(["phonebook", *model_flags])
    cfg = task_model(run.model, build_task("phonebook", run.task))
    tag = run_dir / "checkpoints" / f"step{step:08d}"
    tag.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(run_config_dict(run, cfg, task_name="phonebook"), default=str))
    (run_dir / "checkpoints" / "latest").write_text(tag.name)
    module = _Payload(run_dir.parent / "pwned") if payload else build_model(cfg).state_dict()
    torch.save({"module": module, "dp_world_size": 1}, tag / "mp_rank_00_model_states.pt")
    return run_dir


def write_consolidated(path: Path, vocab_size: int, tokenizer: Optional[Path]) -> Path:
    """A consolidated pre-training checkpoint (.safetensors + sidecar) of a tiny dense model."""
    from ds_parrots.config import MoEConfig, ModelConfig
    from ds_parrots.checkpoints.load import FORMAT, VERSION
    from ds_parrots.checkpoints.consolidate import save_consolidated
    from ds_parrots.models import build_model

    cfg = ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=1, n_heads=4, max_seq_len=64)
    meta = {"format": FORMAT, "version": VERSION, "model": dataclasses.asdict(cfg), "task_name": None,
            "task_config": None, "tokenizer": str(tokenizer) if tokenizer else None, "step": 1}
    return save_consolidated(build_model(cfg).state_dict(), meta, path)


def write_tokens(prefix: Path, docs=((5, 6, 7, 8), (9, 10, 11), (12, 13)), dtype=None) -> Path:
    import numpy as np

    from ds_parrots.data.indexed import IndexedWriter

    prefix.parent.mkdir(parents=True, exist_ok=True)
    with IndexedWriter(prefix, np.dtype(dtype or np.uint16)) as w:
        for d in docs:
            w.add_document(np.array(d, dtype=np.int64))
    return prefix


def write_mixture(tmp: Path, sources=None, text: Optional[str] = None) -> Path:
    path = tmp / "mix.json"
    if text is None:
        text = json.dumps({"name": "m", "sources": sources if sources is not None else
                           [{"name": "a", "path": "data/a", "weight": 1.0}]})
    path.write_text(text)
    return path


def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    path.write_bytes(bytes(raw))


def write_bench(tmp: Path, rows, name: str = "piqa", split: str = "validation") -> None:
    folder = tmp / "bench" / name
    folder.mkdir(parents=True)
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    (folder / f"{split}.jsonl").write_text(text)


PIQA = {"goal": "open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0}


def bench_eval(tmp: Path, assets, rows=None, **kw) -> None:
    write_consolidated(tmp / "m.safetensors", 400, assets["tokenizer"])
    if rows is not None:
        write_bench(tmp, rows, **kw)


def corrupt_idx(offset: int, data: bytes):
    def setup(tmp, assets):
        good_pretrain(tmp, assets)
        patch_bytes(tmp / "data" / "a.idx", offset, data)
    return setup


def good_pretrain(tmp: Path, assets) -> None:
    write_tokens(tmp / "data" / "a")
    write_mixture(tmp)


PRETRAIN = ("train", "pretrain", *TINY, "--data.mixture", "{tmp}/mix.json", "--data.data-root", "{tmp}",
            "--data.seq-len", "4", "--data.val-sequences", "1", "--train.steps", "2", "--train.global-batch", "2",
            "--train.out-dir", "{tmp}/runs")
PHONEBOOK = ("train", "phonebook", *TINY, "--train.out-dir", "{tmp}/runs")
PHONEBOOK_MOE = ("train", "phonebook", "--preset", "tiny-moe", "--train.out-dir", "{tmp}/runs")
HEADER_SIZE = 34  # data/indexed.py HEADER: magic 9, version 8, dtype 1, sequences 8, documents 8


# ---------------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    """Section of docs/errors.md."""
    argv: tuple
    """`ds-parrots` (or `ds-parrots-eval`) arguments; {tmp} is the case's directory."""
    expect: tuple
    """Substrings of the error line: the input it names, and the fix it gives."""
    setup: Optional[Callable] = None
    """setup(tmp, assets) writes the malformed input."""
    command: str = "ds-parrots"
    parser: bool = False
    """A type / choice error found by tyro's parser: tyro prints its own boxed usage message (several
    lines, no traceback) naming the flag and the values it takes."""


def C(id, kind, argv, expect, setup=None, **kw):
    return Case(id, kind, tuple(argv), tuple(expect), setup, **kw)


CASES = [
    # --- command-line flags --------------------------------------------------------------------------
    C("flag-unknown-preset", "flags", ["train", "phonebook", "--preset", "tiny-moo"],
      ["unknown preset 'tiny-moo'", "ds-parrots presets"]),
    C("flag-negative-steps", "flags", [*PHONEBOOK, "--train.steps", "-3"], ["--train.steps=-3", ">= 1"]),
    C("flag-steps-not-int", "flags", [*PHONEBOOK, "--train.steps", "ten"], ["--train.steps", "ten"], parser=True),
    C("flag-bad-precision", "flags", [*PHONEBOOK, "--train.precision", "fp64"],
      ["--train.precision", "fp64", "bf16"], parser=True),
    C("flag-bad-zero-stage", "flags", [*PHONEBOOK, "--train.zero-stage", "4"], ["--train.zero-stage"],
      parser=True),
    C("flag-unknown-flag", "flags", [*PHONEBOOK, "--train.stepz", "3"], ["--train.stepz"], parser=True),
    C("flag-global-batch-not-divisible", "flags", [*PHONEBOOK, "--train.global-batch", "10",
                                                   "--train.micro-batch", "4"],
      ["--train.global-batch=10", "is not a multiple"]),
    C("flag-ep-size-not-dividing-experts", "flags",
      [*PHONEBOOK, "--model.num-experts", "6", "--moe.ep-size", "4"],
      ["--model.num-experts=6", "--moe.ep-size=4"]),
    C("flag-ep-size-over-world", "flags", [*PHONEBOOK_MOE, "--moe.ep-size", "2"],
      ["--moe.ep-size=2"]),
    C("flag-native-zero3", "flags", [*PHONEBOOK_MOE, "--moe.backend", "native",
                                     "--train.zero-stage", "3"],
      ["native MoE backend does not run under ZeRO-3", "--train.zero-stage"]),
    C("flag-top-k-over-experts", "flags", [*PHONEBOOK, "--model.num-experts", "4", "--model.top-k", "5"],
      ["--model.top-k=5", "--model.num-experts=4", "lower --model.top-k"]),
    C("flag-heads-not-dividing-width", "flags", [*PHONEBOOK, "--model.d-model", "100", "--model.n-heads", "3"],
      ["--model.d-model=100", "--model.n-heads=3"]),
    C("flag-zero-lr", "flags", [*PHONEBOOK, "--optim.lr", "0"], ["--optim.lr=0.0", "> 0"]),
    C("flag-warmup-over-one", "flags", [*PHONEBOOK, "--optim.warmup-frac", "1.5"],
      ["--optim.warmup-frac=1.5", "[0, 1]"]),
    C("flag-negative-capacity-factor", "flags", [*PHONEBOOK, "--moe.capacity-factor", "-1"],
      ["--moe.capacity-factor=-1.0", "omitted"]),
    C("flag-zero-book-size", "flags", [*PHONEBOOK, "--task.book-size", "0"], ["book_size=0", ">= 1"]),
    C("flag-missing-ds-config", "flags", [*PHONEBOOK, "--train.ds-config", "{tmp}/nope.json"],
      ["--train.ds-config {tmp}/nope.json", "drop the flag"]),
    C("flag-ds-config-not-json", "flags", [*PHONEBOOK, "--train.ds-config", "{tmp}/ds.json"],
      ["--train.ds-config {tmp}/ds.json", "not valid JSON"], lambda t, a: (t / "ds.json").write_text("{zero: 3")),
    C("flag-pretrain-without-mixture", "flags", ["train", "pretrain", *TINY, "--train.out-dir", "{tmp}/runs"],
      ["--data.mixture"]),
    C("flag-zero-seq-len", "flags", [*PRETRAIN, "--data.seq-len", "0"], ["--data.seq-len=0", ">= 1"]),
    C("flag-presets-bad-vocab", "flags", ["presets", "--vocab-size", "big"],
      ["'--vocab-size big'", "--vocab-size N, a whole number"]),
    C("flag-unknown-command", "flags", ["trian"], ["unknown command 'trian'", "train, presets"]),
    C("flag-eval-bad-few-shot", "flags", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}",
                                          "--few-shot", "piqa=many"],
      ["--few-shot", "triviaqa=5"], lambda t, a: bench_eval(t, a), command="ds-parrots-eval"),

    # --- mixture files (--data.mixture) --------------------------------------------------------------
    C("mixture-missing-file", "mixture", [*PRETRAIN, "--data.mixture", "{tmp}/nope.json"],
      ["--data.mixture", "nope.json", "shipped mixtures"]),
    C("mixture-not-json", "mixture", PRETRAIN, ["{tmp}/mix.json", "not valid JSON"],
      lambda t, a: write_mixture(t, text="{'sources': [}")),
    C("mixture-no-sources", "mixture", PRETRAIN, ["{tmp}/mix.json", "'sources' list"],
      lambda t, a: write_mixture(t, text='{"name": "m"}')),
    C("mixture-source-without-path", "mixture", PRETRAIN, ["{tmp}/mix.json", "source 0 needs a 'path'"],
      lambda t, a: write_mixture(t, [{"name": "a", "weight": 1}])),
    C("mixture-negative-weight", "mixture", PRETRAIN, ["{tmp}/mix.json", "'a' has weight -1", "> 0"],
      lambda t, a: write_mixture(t, [{"name": "a", "path": "data/a", "weight": -1}])),
    C("mixture-weight-not-a-number", "mixture", PRETRAIN, ["{tmp}/mix.json", "'a' has weight 'half'"],
      lambda t, a: write_mixture(t, [{"name": "a", "path": "data/a", "weight": "half"}])),
    C("mixture-duplicate-source", "mixture", PRETRAIN, ["{tmp}/mix.json", "'a' appears twice"],
      lambda t, a: write_mixture(t, [{"name": "a", "path": "data/a"}, {"name": "a", "path": "data/b"}])),
    C("mixture-unknown-dataset-path", "mixture", PRETRAIN, ["{tmp}/data/b.idx", "does not exist",
                                                             "ds-parrots prepare"],
      lambda t, a: (write_tokens(t / "data" / "a"), write_mixture(t, [{"name": "b", "path": "data/b"}]))),

    # --- token files (.bin / .idx) -------------------------------------------------------------------
    C("tokens-idx-bad-magic", "tokens", PRETRAIN, ["{tmp}/data/a.idx", "bad magic", "ds-parrots prepare"],
      corrupt_idx(0, b"NOTANIDX")),
    C("tokens-idx-truncated", "tokens", PRETRAIN, ["{tmp}/data/a.idx", "ds-parrots prepare"],
      lambda t, a: (good_pretrain(t, a), (t / "data" / "a.idx").write_bytes((t / "data" / "a.idx").read_bytes()[:20]))),
    C("tokens-idx-unknown-dtype", "tokens", PRETRAIN, ["{tmp}/data/a.idx", "dtype code 99", "ds-parrots prepare"],
      corrupt_idx(17, bytes([99]))),
    C("tokens-idx-pointer-past-bin", "tokens", PRETRAIN, ["{tmp}/data/a.idx", "ds-parrots prepare"],
      corrupt_idx(HEADER_SIZE + 3 * 4 + 8, (10**6).to_bytes(8, "little"))),  # sequence 1's pointer
    C("tokens-bin-truncated", "tokens", PRETRAIN, ["{tmp}/data/a.bin", "truncated", "ds-parrots prepare"],
      lambda t, a: (good_pretrain(t, a), (t / "data" / "a.bin").write_bytes((t / "data" / "a.bin").read_bytes()[:6]))),
    C("tokens-bin-missing", "tokens", PRETRAIN, ["{tmp}/data/a.bin", "does not exist", "ds-parrots prepare"],
      lambda t, a: (good_pretrain(t, a), (t / "data" / "a.bin").unlink())),
    C("tokens-dtype-too-small-for-vocab", "tokens", [*PRETRAIN, "--data.tokenizer", "{tokenizer}"],
      ["{tmp}/data/a.bin", "uint8", "ds-parrots prepare"],
      lambda t, a: (write_tokens(t / "data" / "a", dtype="uint8"), write_mixture(t))),

    # --- tokenizer files -----------------------------------------------------------------------------
    C("tokenizer-missing", "tokenizer", [*PRETRAIN, "--data.tokenizer", "{tmp}/nope.model"],
      ["{tmp}/nope.model", "sentencepiece .model"], good_pretrain),
    C("tokenizer-not-sentencepiece", "tokenizer", [*PRETRAIN, "--data.tokenizer", "{tmp}/tok.model"],
      ["{tmp}/tok.model", "not a sentencepiece model"],
      lambda t, a: (good_pretrain(t, a), (t / "tok.model").write_text("<unk> 0\n"))),
    C("tokenizer-larger-than-model-vocab", "tokenizer",
      [*PRETRAIN, "--data.tokenizer", "{tokenizer}", "--model.vocab-size", "300"],
      ["--model.vocab-size=300", "{tokenizer}"], good_pretrain),
    C("tokenizer-vocab-mismatch-with-checkpoint", "tokenizer",
      ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"], ["{tokenizer}", "vocab"],
      lambda t, a: (write_consolidated(t / "m.safetensors", 300, a["tokenizer"]), write_bench(t, [PIQA])),
      command="ds-parrots-eval"),
    C("tokenizer-recorded-file-moved", "tokenizer",
      ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"], ["{tmp}/gone.model", "--tokenizer"],
      lambda t, a: (write_consolidated(t / "m.safetensors", 400, t / "gone.model"), write_bench(t, [PIQA])),
      command="ds-parrots-eval"),
    C("prepare-missing-tokenizer", "tokenizer",
      ["prepare", "--input", "{tmp}/c.txt", "--tokenizer", "{tmp}/nope.model", "--output", "{tmp}/out/c"],
      ["{tmp}/nope.model", "sentencepiece .model"], lambda t, a: (t / "c.txt").write_text("hello\n")),
    C("prepare-missing-input", "tokenizer",
      ["prepare", "--input", "{tmp}/nope.jsonl", "--tokenizer", "{tokenizer}", "--output", "{tmp}/out/c"],
      ["{tmp}/nope.jsonl"]),
    C("tokenizer-train-missing-input", "tokenizer",
      ["tokenizer", "train", "--input", "{tmp}/nope.txt", "--output", "{tmp}/tok"], ["{tmp}/nope.txt"]),

    # --- checkpoints ---------------------------------------------------------------------------------
    C("ckpt-missing-dir", "checkpoint", ["consolidate", "{tmp}/nope", "--out", "{tmp}/m.safetensors"],
      ["{tmp}/nope", "no such checkpoint"]),
    C("ckpt-no-latest", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["{tmp}/run", "checkpoints/latest"],
      lambda t, a: (write_run(t / "run"), (t / "run" / "checkpoints" / "latest").unlink())),
    C("ckpt-latest-names-missing-step", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["{tmp}/run/checkpoints/latest", "step00000099"],
      lambda t, a: (write_run(t / "run"), (t / "run" / "checkpoints" / "latest").write_text("step00000099"))),
    C("ckpt-no-config", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["{tmp}/run/config.json", "is missing"],
      lambda t, a: (write_run(t / "run"), (t / "run" / "config.json").unlink())),
    C("ckpt-truncated-model-states", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["mp_rank_00_model_states.pt", "cannot read checkpoint file"],
      lambda t, a: (write_run(t / "run"), _truncate(next((t / "run").rglob("*.pt")), 100))),
    C("ckpt-another-architecture", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["{tmp}/run", "does not match the model configuration"],
      lambda t, a: (write_run(t / "run"), _edit_config(t / "run", d_model=128))),
    C("ckpt-consolidate-out-exists", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["{tmp}/m.safetensors", "--overwrite"],
      lambda t, a: (write_run(t / "run"), (t / "m.safetensors").write_text("keep"))),
    C("ckpt-consolidate-out-not-safetensors", "checkpoint", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.pt"],
      ["--out {tmp}/m.pt", ".safetensors"], lambda t, a: write_run(t / "run")),
    C("ckpt-truncated-safetensors", "checkpoint", ["export-hf", "{tmp}/m.safetensors", "--out", "{tmp}/hf"],
      ["{tmp}/m.safetensors", "not a readable safetensors file"],
      lambda t, a: (write_consolidated(t / "m.safetensors", 64, None), _truncate(t / "m.safetensors", 200))),
    C("ckpt-safetensors-without-sidecar", "checkpoint", ["export-hf", "{tmp}/m.safetensors", "--out", "{tmp}/hf"],
      ["{tmp}/m.json", "sidecar"],
      lambda t, a: (write_consolidated(t / "m.safetensors", 64, None), (t / "m.json").unlink())),
    C("ckpt-export-out-not-empty", "checkpoint", ["export-hf", "{tmp}/m.safetensors", "--out", "{tmp}/hf"],
      ["{tmp}/hf", "--overwrite"],
      lambda t, a: (write_consolidated(t / "m.safetensors", 64, None), (t / "hf").mkdir(),
                    (t / "hf" / "keep.txt").write_text("keep"))),
    C("ckpt-hf-folder-other-model-type", "checkpoint", ["{tmp}/hf", "--tasks", "piqa", "--bench-dir", "{tmp}"],
      ["{tmp}/hf/config.json", "model_type 'llama'"],
      lambda t, a: _hf_folder(t, model_type="llama"), command="ds-parrots-eval"),
    C("ckpt-hf-folder-truncated-weights", "checkpoint", ["{tmp}/hf", "--tasks", "piqa", "--bench-dir", "{tmp}"],
      ["{tmp}/hf/model.safetensors", "not a readable safetensors file"],
      lambda t, a: (_hf_folder(t), _truncate(t / "hf" / "model.safetensors", 100)), command="ds-parrots-eval"),
    C("ckpt-resume-without-checkpoint", "checkpoint", [*PHONEBOOK, "--train.resume"],
      ["--train.resume", "no checkpoint in", "train without --train.resume first"]),
    C("ckpt-resume-at-another-world-size", "checkpoint", [*PHONEBOOK, "--train.run-name", "r", "--train.resume"],
      ["--train.resume", "saved by 2 ranks", "--train.init-from"],
      lambda t, a: (write_run(t / "runs" / "r"), (t / "runs" / "r" / "checkpoints" / "step00000002"
                                                   / "ds_parrots_topology.json").write_text('{"world_size": 2}'))),
    C("ckpt-resume-under-another-config", "checkpoint",
      [*PHONEBOOK, "--train.run-name", "r", "--train.resume", "--optim.lr", "0.5"],
      ["--train.resume", "optim.lr: 0.001 -> 0.5", "resume with the same flags"],
      lambda t, a: write_run(t / "runs" / "r")),
    C("ckpt-run-dir-holds-checkpoints", "checkpoint", [*PHONEBOOK, "--train.run-name", "r"],
      ["already holds checkpoint step00000002", "--train.resume"], lambda t, a: write_run(t / "runs" / "r")),
    C("ckpt-init-from-another-model", "checkpoint",
      [*PHONEBOOK, "--train.init-from", "{tmp}/src", "--train.steps", "10", "--model.d-model", "128"],
      ["--train.init-from {tmp}/src", "another model", "pass the model flags"], lambda t, a: write_run(t / "src")),
    C("ckpt-init-from-past-steps", "checkpoint",
      [*PHONEBOOK, "--train.init-from", "{tmp}/src", "--train.steps", "2"],
      ["--train.init-from {tmp}/src", "raise --train.steps"], lambda t, a: write_run(t / "src")),

    # --- untrusted checkpoints: a pickled payload is refused, never run ------------------------------
    C("pickle-consolidate", "security", ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
      ["mp_rank_00_model_states.pt", "weights_only=True"], lambda t, a: write_run(t / "run", payload=True)),
    C("pickle-export-hf", "security", ["export-hf", "{tmp}/run", "--out", "{tmp}/hf"],
      ["mp_rank_00_model_states.pt", "weights_only=True"], lambda t, a: write_run(t / "run", payload=True)),
    C("pickle-eval", "security", ["{tmp}/run"], ["mp_rank_00_model_states.pt", "weights_only=True"],
      lambda t, a: write_run(t / "run", payload=True), command="ds-parrots-eval"),
    C("pickle-init-from", "security", [*PHONEBOOK, "--train.init-from", "{tmp}/run", "--train.steps", "10"],
      ["mp_rank_00_model_states.pt", "weights_only=True"], lambda t, a: write_run(t / "run", payload=True)),
    C("pickle-resume", "security", [*PHONEBOOK, "--train.run-name", "r", "--train.resume"],
      ["mp_rank_00_model_states.pt", "weights_only=True"],
      lambda t, a: write_run(t / "runs" / "r", payload=True)),

    # --- benchmark files (ds-parrots-eval --bench-dir) -----------------------------------------------
    C("bench-missing-field", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
      ["{tmp}/bench/piqa/validation.jsonl", "row 1", "sol2"],
      lambda t, a: bench_eval(t, a, [{k: v for k, v in PIQA.items() if k != "sol2"}]), command="ds-parrots-eval"),
    C("bench-wrong-type", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
      ["{tmp}/bench/piqa/validation.jsonl", "row 1", "label"],
      lambda t, a: bench_eval(t, a, [{**PIQA, "label": "first"}]), command="ds-parrots-eval"),
    C("bench-not-json", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
      ["{tmp}/bench/piqa/validation.jsonl", "row 1", "not valid JSON"],
      lambda t, a: bench_eval(t, a, '{"goal": "x",\n'), command="ds-parrots-eval"),
    C("bench-empty-file", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
      ["{tmp}/bench/piqa/validation.jsonl", "no rows"], lambda t, a: bench_eval(t, a, ""),
      command="ds-parrots-eval"),
    C("bench-not-parquet", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
      ["{tmp}/bench/piqa/validation.parquet", "parquet"],
      lambda t, a: (bench_eval(t, a), (t / "bench" / "piqa").mkdir(parents=True),
                    (t / "bench" / "piqa" / "validation.parquet").write_text("not parquet")),
      command="ds-parrots-eval"),
    C("bench-unknown-task", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqaa", "--bench-dir", "{tmp}/bench"],
      ["unknown benchmark 'piqaa'", "known:"], lambda t, a: bench_eval(t, a, [PIQA]), command="ds-parrots-eval"),
    C("bench-missing-split", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
      ["'validation' split", "piqa"], lambda t, a: bench_eval(t, a, [PIQA], split="train"),
      command="ds-parrots-eval"),
    C("bench-dir-missing", "benchmark", ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}/nope"],
      ["{tmp}/nope", "does not exist"], lambda t, a: bench_eval(t, a), command="ds-parrots-eval"),
    C("bench-synthetic-task-mismatch", "benchmark", ["{tmp}/run", "--tasks", "shortest-path"],
      ["trained on 'phonebook'"], lambda t, a: write_run(t / "run"), command="ds-parrots-eval"),

    # --- hostfiles (ds-parrots topology, launch/*.sh) ------------------------------------------------
    C("hostfile-missing", "hostfile", ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
      ["hostfile {tmp}/hosts", "no such file", "slots=N"]),
    C("hostfile-bad-syntax", "hostfile", ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
      ["hostfile {tmp}/hosts line 2", "'hostname slots=N'"],
      lambda t, a: (t / "hosts").write_text("node1 slots=8\nnode2 gpus=8\n")),
    C("hostfile-zero-slots", "hostfile", ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
      ["hostfile {tmp}/hosts line 1", "slots=0", "slots >= 1"],
      lambda t, a: (t / "hosts").write_text("node1 slots=0\n")),
    C("hostfile-duplicate-host", "hostfile", ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
      ["hostfile {tmp}/hosts line 2", "already listed", "list each node once"],
      lambda t, a: (t / "hosts").write_text("node1 slots=8\nnode1 slots=8\n")),
    C("hostfile-no-hosts", "hostfile", ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
      ["hostfile {tmp}/hosts", "lists no hosts"], lambda t, a: (t / "hosts").write_text("# none yet\n")),
    C("hostfile-topology-refused", "hostfile",
      ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", "--preset", "tiny-moe", "--moe.ep-size", "3"],
      ["--moe.ep-size=3"], lambda t, a: (t / "hosts").write_text("node1 slots=2\nnode2 slots=2\n")),

    # --- sweeps and reproductions --------------------------------------------------------------------
    C("sweep-unknown-grid", "sweep", ["sweep", "synthetic-phonebok"], ["unknown grid 'synthetic-phonebok'",
                                                                        "choose one of"]),
    C("sweep-bad-filter-key", "sweep", ["sweep", "smoke", "--filter", "colour=red"], ["--filter colour=red",
                                                                                       "use one of"]),
    C("sweep-filter-selects-nothing", "sweep", ["sweep", "synthetic-phonebook", "--filter", "width=3"],
      ["--filter width=3", "selects none"]),
    C("sweep-extra-sets-grid-flag", "sweep", ["sweep", "smoke", "--extra", "--preset tiny-dense"],
      ["--extra sets --preset", "--filter"]),
    C("sweep-extra-rejected-by-train", "sweep", ["sweep", "smoke", "--extra", "--train.steps -1"],
      ["--train.steps=-1"]),
    C("reproduce-unknown-scale", "sweep", ["reproduce", "phonebook", "--scale", "huge"], ["--scale", "huge"],
      parser=True),
    C("reproduce-zero-epochs", "sweep", ["reproduce", "phonebook", "--scale", "smoke", "--epochs", "0"],
      ["--epochs=0", "> 0"]),

    # --- result files (ds-parrots-eval plot) ---------------------------------------------------------
    C("plot-missing-file", "results", ["plot", "{tmp}/nope.json", "--out", "{tmp}/figs"],
      ["{tmp}/nope.json", "no such file"], command="ds-parrots-eval"),
    C("plot-not-json", "results", ["plot", "{tmp}/r.json", "--out", "{tmp}/figs"], ["{tmp}/r.json", "not JSON"],
      lambda t, a: (t / "r.json").write_text("{"), command="ds-parrots-eval"),
    C("plot-not-an-object", "results", ["plot", "{tmp}/r.json", "--out", "{tmp}/figs"],
      ["{tmp}/r.json", "JSON object"], lambda t, a: (t / "r.json").write_text("[1, 2]"), command="ds-parrots-eval"),
    C("plot-unknown-kind", "results", ["plot", "{tmp}/r.json", "--out", "{tmp}/figs"], ["{tmp}/r.json", "kind"],
      lambda t, a: (t / "r.json").write_text('{"kind": "gap"}'), command="ds-parrots-eval"),
    C("plot-missing-field", "results", ["plot", "{tmp}/r.json", "--out", "{tmp}/figs"],
      ["{tmp}/r.json", "missing field"],
      lambda t, a: (t / "r.json").write_text('{"kind": "benchmarks", "categories": {"math": 0.1}}'),
      command="ds-parrots-eval"),
]


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _edit_config(run_dir: Path, **model) -> None:
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"].update(model)
    (run_dir / "config.json").write_text(json.dumps(cfg))


def _hf_folder(tmp: Path, **config) -> None:
    from ds_parrots.config import MoEConfig, ModelConfig
    from ds_parrots.checkpoints.hf_export import export_hf
    from ds_parrots.models import build_model

    cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, max_seq_len=64)
    export_hf(build_model(cfg).state_dict(), cfg, tmp / "hf")
    if config:
        path = tmp / "hf" / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))


# ---------------------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------------------

# DeepSpeed's import-time notice ("Setting accelerator to CPU") is logging, not our error output.
_NOISE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\] \[(WARNING|INFO)\]")
MESSAGES: dict[str, str] = {}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from text_corpus import train_tiny

    return {"tokenizer": train_tiny(tmp_path_factory.mktemp("sp")).path}


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in root.rglob("*")}


def fill(text: str, tmp: Path, assets: dict) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{tokenizer}", str(assets["tokenizer"]))


def invoke(case: Case, tmp: Path, assets: dict, capsys) -> tuple[int, str]:
    from ds_parrots.cli.main import main as ds_parrots
    from ds_parrots_eval.cli import main as ds_parrots_eval

    main = ds_parrots if case.command == "ds-parrots" else ds_parrots_eval
    capsys.readouterr()
    try:
        rc = main([fill(a, tmp, assets) for a in case.argv])
    except SystemExit as e:  # tyro's usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, assets, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative default outputs would land here

    def launched(*args, **kw):
        raise AssertionError("the command passed its checks and started a run")

    monkeypatch.setattr("ds_parrots.training.recipes.synthetic.open_run", launched)
    monkeypatch.setattr("ds_parrots.training.recipes.pretrain.open_run", launched)
    if case.setup is not None:
        case.setup(tmp_path, assets)
    before = snapshot(tmp_path)
    rc, err = invoke(case, tmp_path, assets, capsys)
    lines = [l for l in err.splitlines() if l.strip() and not _NOISE.match(l)]
    assert rc == 2, err
    assert "Traceback" not in err, err
    text = " ".join(lines)
    for want in case.expect:
        assert fill(want, tmp_path, assets) in (text if case.parser else " ".join(lines[:1])), (want, err)
    if not case.parser:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert snapshot(tmp_path) == before  # nothing written, nothing touched; no payload ran
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "runs" / "pwned").exists()
    shown = parser_message(lines) if case.parser else lines[0]
    MESSAGES[case.id] = shown.replace(str(tmp_path), "<tmp>").replace(str(assets["tokenizer"]), "<tok.model>")


def test_the_console_scripts_print_the_same_one_line(tmp_path):
    """The real entry points (not only their main functions): exit code 2, one line, payload not run."""
    import subprocess
    import sys

    from helpers import cpu_env

    write_run(tmp_path / "run", payload=True)
    for cmd in ([sys.executable, "-m", "ds_parrots.cli", "consolidate", str(tmp_path / "run"), "--out",
                 str(tmp_path / "m.safetensors")],
                [sys.executable, str(REPO / "eval" / "cli.py"), str(tmp_path / "run")]):
        proc = subprocess.run(cmd, cwd=tmp_path, env=cpu_env(), capture_output=True, text=True, timeout=120)
        lines = [l for l in proc.stderr.splitlines() if l.strip() and not _NOISE.match(l)]
        assert proc.returncode == 2 and len(lines) == 1 and "weights_only=True" in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def parser_message(lines: list[str]) -> str:
    """tyro's box, flattened for the doc: its title and the text before the help it appends."""
    rule = set("│╭╰╮╯─-|+ ")  # rich's box characters, or their ASCII stand-ins when not on a terminal
    title, text = lines[0].strip("".join(rule)), []
    for line in lines[1:]:
        line = line.strip("│| ")
        if line.startswith(("For full helptext", "Argument helptext", "Perhaps you meant")):
            break
        if not set(line) <= rule:
            text.append(line)
    return f"(parser) {title}: " + re.sub(r"\s+", " ", " ".join(text)).strip()


def test_the_payload_is_live(tmp_path):
    """The planted checkpoint does run code when unpickled with weights_only=False (what DeepSpeed's
    engine.load_checkpoint does), so the refusals above are what keeps it from running."""
    write_run(tmp_path / "run", payload=True)
    torch.load(next((tmp_path / "run").rglob("*.pt")), weights_only=False)
    assert (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------------------
# No code path unpickles a user file with code execution enabled
# ---------------------------------------------------------------------------------------------------

_UNSAFE_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads", "dill.load",
                 "dill.loads", "joblib.load", "marshal.load", "marshal.loads", "shelve.open", "yaml.load",
                 "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "torch.serialization.add_safe_globals"}
_UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve"}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def unsafe_loads(source: str, name: str = "<src>") -> list[str]:
    """Calls that can run code from a file: torch.load without weights_only=True, np.load with
    allow_pickle=True, pickle / yaml.load / ... and imports from the pickling modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _UNSAFE_MODULES:
            found.append(f"{name}:{node.lineno} from {node.module} import")
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        const = lambda key: isinstance(kw.get(key), ast.Constant) and kw[key].value  # noqa: E731
        if func in _UNSAFE_CALLS or (func.endswith(".load") and func.split(".")[0] in _UNSAFE_MODULES):
            found.append(f"{name}:{node.lineno} {func}")
        elif func == "torch.load" and const("weights_only") is not True:
            found.append(f"{name}:{node.lineno} torch.load without weights_only=True")
        elif func in ("np.load", "numpy.load") and const("allow_pickle") is not False and "allow_pickle" in kw:
            found.append(f"{name}:{node.lineno} {func}(allow_pickle=...)")
    return found


def test_the_unsafe_load_check_catches_each_form():
    bad = ("import torch, pickle, numpy as np, yaml\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "pickle.load(f)\nnp.load(p, allow_pickle=True)\nyaml.load(s)\nfrom pickle import loads\n")
    assert len(unsafe_loads(bad)) == 6
    assert unsafe_loads("torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p, mmap_mode='r')\n"
                        "yaml.safe_load(s)\n") == []


def test_no_source_file_loads_untrusted_data_with_code_execution():
    found = []
    for folder in ("ds_parrots", "eval", "launch", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            found += unsafe_loads(path.read_text(), str(path.relative_to(REPO)))
        for path in sorted((REPO / folder).rglob("*.sh")) + sorted((REPO / folder).rglob("*.sbatch")):
            text = path.read_text()
            found += [f"{path.relative_to(REPO)}: {w}" for w in ("torch.load", "pickle") if w in text]
    assert found == []


# ---------------------------------------------------------------------------------------------------
# docs/errors.md lists every case
# ---------------------------------------------------------------------------------------------------

SECTIONS = {"flags": "Command-line flags", "mixture": "Mixture files (`--data.mixture`)",
            "tokens": "Token files (`.bin` / `.idx`)", "tokenizer": "Tokenizer files and text inputs",
            "checkpoint": "Checkpoints", "security": "Untrusted checkpoints (pickled code)",
            "benchmark": "Benchmark files (`ds-parrots-eval --bench-dir`)", "hostfile": "Hostfiles",
            "sweep": "Sweeps and reproductions", "results": "Result files (`ds-parrots-eval plot`)"}


def render_tables() -> str:
    out = []
    for kind, title in SECTIONS.items():
        out += [f"### {title}", "", "| case | command | message |", "|---|---|---|"]
        for c in CASES:
            if c.kind == kind:
                cmd = " ".join([c.command, *c.argv])
                # The flags every pretrain case shares, and where runs go, say nothing about the case.
                cmd = cmd.replace(" ".join(PRETRAIN), "train pretrain --preset tiny-dense --data.mixture {tmp}/mix.json ...")
                cmd = cmd.replace(" --train.out-dir {tmp}/runs", "")
                cmd = cmd.replace("{tmp}", "<tmp>").replace("{tokenizer}", "<tok.model>")
                msg = MESSAGES.get(c.id, "").replace("|", "\\|")
                out.append(f"| `{c.id}` | `{cmd}` | {msg} |")
        out.append("")
    return "\n".join(out)


_TABLES = re.compile(r"(<!-- cases: generated by tests/test_bad_inputs.py -->\n).*?(<!-- end of cases -->)", re.S)


def test_docs_list_every_case():
    assert {c.kind for c in CASES} == set(SECTIONS)
    assert len({c.id for c in CASES}) == len(CASES)
    if os.environ.get("DS_PARROTS_WRITE_ERRORS_DOC") and len(MESSAGES) == len(CASES):
        DOC.write_text(_TABLES.sub(lambda m: m.group(1) + "\n" + render_tables() + "\n" + m.group(2),
                                   DOC.read_text()))
    text = DOC.read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in text]
    assert missing == [], f"docs/errors.md lacks {missing}; regenerate it (see this file's docstring)"
