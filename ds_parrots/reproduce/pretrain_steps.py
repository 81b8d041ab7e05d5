"""The steps of `reproduce pretrain` besides training, each resumable: a finished step's output is reused and the
step reports "done before"; an unfinished one leaves nothing that looks finished.

    corpus       ds-parrots data synth-corpus    (the folder is renamed into place; manifest.json records sizes)
    tokenizer    ds-parrots tokenizer train      (trained under a temporary name; the .model renamed in last)
    prepare      ds-parrots prepare              (its .idx is renamed in last)
    consolidate  ds-parrots consolidate          (the .safetensors, then its sidecar, renamed in)
    eval, gap    ds-parrots-eval [gap]           (atomic results file; its arguments recorded beside it, so a
                                                  rerun under other evaluation settings scores again)

An output older than what it was made from (make's rule: weights older than the run's results.json, scores
older than the weights) is made again.

Training itself goes through the sweep's machinery (probes.run_probe): results.json marks a run done. Each
step returns a `Step` with the command that does the same by hand, which --dry-run prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError, RunPreempted
from ds_parrots.fileio import replace, temporary_path, write_text_atomic
from ds_parrots.reproduce.pretrain_scales import CorpusSpec

SOURCES = ("knowledge", "math")  # the corpus's two sources, as its mixture.json names them


@dataclass
class Step:
    """One step's outcome, as summary.json records it."""

    name: str
    """corpus, tokenizer, prepare <source>, train, consolidate, eval or gap."""
    status: str
    """ran, done before (its output existed and was reused) or failed."""
    seconds: Optional[float]
    """Wall time of the step (None: reused, and no earlier summary recorded it)."""
    output: str
    """The file or folder the step writes."""
    command: str
    """The command that does this step by hand."""
    error: str = ""
    """Why it failed (the exception, or the end of its log)."""

    def as_dict(self) -> dict:
        return asdict(self)


def fresh(out: Path, source: Path) -> bool:
    """`out` exists and is no older than `source` (make's rule): an output made from an earlier version of its
    input, e.g. consolidated weights of a run that was removed and trained again, is made again."""
    return out.is_file() and (not source.exists() or out.stat().st_mtime_ns >= source.stat().st_mtime_ns)


def _run(name: str, output: Path, command: str, done: bool, work: Callable[[], None], log: Path) -> Step:
    """`work()` unless `done`, its prints going to `log`; an exception becomes a failed step (the rest goes on)."""
    if done:
        return Step(name, "done before", None, str(output), command)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "a") as f, contextlib.redirect_stdout(f):
        try:
            work()
        except Exception as e:  # noqa: BLE001 - reported with the step; the reproduction goes on
            print(f"error: {e}", file=f)
            return Step(name, "failed", round(time.monotonic() - start, 1), str(output), command, str(e))
    return Step(name, "ran", round(time.monotonic() - start, 1), str(output), command)


def corpus_command(folder: Path, seed: int, spec: CorpusSpec) -> str:
    return shlex.join(
        ["ds-parrots", "data", "synth-corpus", "--out", str(folder), "--seed", str(seed), "--people",
         str(spec.people), "--math-train", str(spec.math_train), "--math-test", str(spec.math_test)]
    )  # fmt: skip


def corpus_step(folder: Path, seed: int, spec: CorpusSpec, log: Path) -> Step:
    """The generated corpus (and its eval sets and mixture) in `folder`; a corpus of other sizes there is refused."""
    from ds_parrots.data.synthetic_corpus import KnowledgeConfig, MathConfig, write_corpus

    knowledge, math = KnowledgeConfig(people=spec.people), MathConfig(spec.math_train, spec.math_test)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        recorded = json.loads(manifest.read_text())
        wanted = {"seed": seed, "knowledge": asdict(knowledge), "math": asdict(math)}
        if {k: recorded.get(k) for k in wanted} != wanted:
            raise ConfigError(
                f"{folder} holds a corpus of other settings (seed {recorded.get('seed')}, "
                f"{recorded.get('knowledge', {}).get('people')} people); remove it or choose another --out-dir, "
                "so that no model trained on it is reported as trained on this one"
            )
    return _run(
        "corpus",
        folder,
        corpus_command(folder, seed, spec),
        manifest.is_file(),
        lambda: write_corpus(folder, seed, knowledge, math),
        log,
    )


def tokenizer_path(folder: Path) -> Path:
    return folder / "tok" / "spm.model"


def _inputs(folder: Path) -> list[Path]:
    return [folder / "corpus" / f"{s}.jsonl" for s in SOURCES]


def tokenizer_command(folder: Path, vocab_size: int) -> str:
    return shlex.join(
        ["ds-parrots", "tokenizer", "train", "--input", *map(str, _inputs(folder)), "--vocab-size",
         str(vocab_size), "--output", str(tokenizer_path(folder).with_suffix(""))]
    )  # fmt: skip


def tokenizer_step(folder: Path, vocab_size: int, log: Path) -> Step:
    """A BPE sentencepiece model on both corpus files, trained under a temporary name and renamed into place."""
    from ds_parrots.data.tokenizer import train_sentencepiece

    model = tokenizer_path(folder)

    def work() -> None:
        tmp = temporary_path(model.with_suffix(""))
        trained = train_sentencepiece(_inputs(folder), tmp, vocab_size)
        replace(trained.with_suffix(".vocab"), model.with_suffix(".vocab"))
        replace(trained, model)  # last: a .model present is a finished tokenizer
        print(f"trained {vocab_size}-piece tokenizer {model}")

    done = fresh(model, folder / "manifest.json")
    return _run("tokenizer", model, tokenizer_command(folder, vocab_size), done, work, log)


def _prefix(folder: Path, source: str) -> Path:
    return folder / "tokens" / source


def prepare_command(folder: Path, source: str) -> str:
    return shlex.join(
        ["ds-parrots", "prepare", "--input", str(folder / "corpus" / f"{source}.jsonl"), "--tokenizer",
         str(tokenizer_path(folder)), "--output", str(_prefix(folder, source))]
    )  # fmt: skip


def prepare_step(folder: Path, source: str, log: Path) -> Step:
    """One corpus source tokenized into tokens/<source>.bin / .idx (prepare renames the .idx in last)."""
    from ds_parrots.data.prepare import prepare

    prefix = _prefix(folder, source)
    done = fresh(prefix.with_suffix(".idx"), tokenizer_path(folder)) and prefix.with_suffix(".bin").is_file()

    def work() -> None:
        # One process: the corpus is small, and worker start-up would cost more than it saves here.
        text = folder / "corpus" / f"{source}.jsonl"
        print(
            prepare([text], "text", tokenizer_path(folder), prefix, num_proc=1, overwrite=True, verbose=False)
        )

    return _run(
        f"prepare {source}", prefix.with_suffix(".idx"), prepare_command(folder, source), done, work, log
    )


def consolidate_command(run_dir: Path, out: Path) -> str:
    return shlex.join(["ds-parrots", "consolidate", str(run_dir), "--out", str(out)])


def consolidate_step(run_dir: Path, out: Path, log: Path) -> Step:
    """The run's final checkpoint as one fp32 .safetensors file and its sidecar, by `ds-parrots consolidate`."""
    from ds_parrots.checkpoints.load import sidecar_path
    from ds_parrots.cli.consolidate import main as consolidate

    done = fresh(out, run_dir / "results.json") and sidecar_path(out).is_file()

    def work() -> None:
        # --overwrite: a weights file without its sidecar is an interrupted consolidation.
        consolidate([str(run_dir), "--out", str(out), "--overwrite"])

    return _run("consolidate", out, consolidate_command(run_dir, out), done, work, log)


def eval_launcher(gpus: int) -> tuple[list[str], str]:
    """(what runs ds-parrots-eval here, how the printed command starts): one process, or deepspeed's launcher."""
    from ds_parrots_eval import cli

    if gpus == 1:
        return [sys.executable, "-m", "ds_parrots_eval.cli"], "ds-parrots-eval"
    script = Path(cli.__file__)
    runner = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(gpus), str(script)]
    return runner, f"deepspeed --num_gpus {gpus} {os.path.relpath(script)}"


def eval_command(argv: list[str], out: Path, gpus: int) -> str:
    return f"{eval_launcher(gpus)[1]} {shlex.join([*argv, '--out', str(out)])}"


def eval_step(name: str, argv: list[str], out: Path, gpus: int, log: Path, source: Path) -> Step:
    """`ds-parrots-eval <argv> --out <out>` in its own process(es) (a crash or a GPU's memory stays there); reused
    when `out` was written by the same arguments and after `source` (the weights it scores)."""
    from ds_parrots.sweep.outputs import run_forwarding

    command = eval_command(argv, out, gpus)
    launcher = eval_launcher(gpus)[0]
    argv = [*argv, "--out", str(out)]
    record = out.with_suffix(".args.json")
    done = fresh(out, source) and record.is_file() and json.loads(record.read_text()) == argv
    if done:
        return Step(name, "done before", None, str(out), command)
    out.parent.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)
    start = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_DATASETS_OFFLINE="1")
    with open(log, "w") as f:
        rc, received = run_forwarding(launcher + argv, f, env)
    seconds = round(time.monotonic() - start, 1)
    if received:  # this reproduction was told to stop: so does it, and a rerun scores this model again
        raise RunPreempted(
            f"{name} of {out.stem}: stopped by {received}; run the same command again to go on"
        )
    if rc != 0 or not out.is_file():
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        why = f"exit code {rc}; the end of {log}: {tail}"
        return Step(name, "failed", seconds, str(out), command, why)
    write_text_atomic(record, json.dumps(argv) + "\n")
    return Step(name, "ran", seconds, str(out), command)
