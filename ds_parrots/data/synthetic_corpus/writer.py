"""The synthetic corpus on disk: corpus documents for `ds-parrots tokenizer train` / `prepare`, a mixture for
`ds-parrots train pretrain`, and the evaluation sets as a --bench-dir for `ds-parrots-eval` (lm-eval's own
triviaqa and gsm8k tasks read them, as they read the real benchmarks).

    <out>/corpus/knowledge.jsonl        {"text": ...}: biographies, and the questions of the QA-train people
    <out>/corpus/math.jsonl             {"text": ...}: the math training problems with their solutions
    <out>/mixture.json                  both sources, weighted by their characters, at <out>/tokens/<name>
    <out>/eval/triviaqa/train.jsonl     TriviaQA schema: questions whose answers are in the corpus as QA
    <out>/eval/triviaqa/validation.jsonl   the scored questions, answered only in biographies
    <out>/eval/gsm8k/train.jsonl        GSM8k schema: the problems in the corpus
    <out>/eval/gsm8k/test.jsonl         held-out problems (ds-parrots-eval gap: train - test)
    <out>/manifest.json                 seed, sizes, per-file rows / bytes / sha256; written last

The folder is written under a temporary name and renamed into place: a crash leaves no folder that looks
complete. Every byte is a function of (seed, sizes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ds_parrots.errors import ConfigError
from ds_parrots.fileio import fsync, fsync_files, temporary_path

from . import arithmetic, knowledge
from .arithmetic import MathConfig
from .knowledge import KnowledgeConfig

GENERATOR = "ds-parrots synth-corpus"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Written:
    out: Path
    files: dict[str, dict]
    """Path relative to `out` -> {"rows", "bytes", "sha256"} (as in the manifest)."""


def check_out(out: Path, force: bool) -> None:
    """Refuse an --out that holds anything but a corpus this command wrote (and that only with --force)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder (it is created if missing)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ConfigError(
            f"--out {out} exists and is not empty; pass --force to replace it, or choose another folder"
        )
    if _generator(out / MANIFEST) != GENERATOR:
        raise ConfigError(
            f"--out {out} is not a folder that 'ds-parrots data synth-corpus' wrote (no {MANIFEST} of its own); "
            "--force replaces only those: empty it or choose another folder"
        )


def _generator(manifest: Path):
    try:
        return json.loads(manifest.read_text()).get("generator")
    except (OSError, ValueError, AttributeError):
        return None


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _mixture(chars: dict[str, int]) -> dict:
    total = sum(chars.values())
    return {
        "name": "synthetic",
        "note": (
            "Written by 'ds-parrots data synth-corpus': knowledge (biographies and questions) and math "
            "(GSM8k-style problems), weighted by their characters (edit the weights to change the mix). "
            "Paths are token-file prefixes relative to --data.data-root (this folder), written by "
            "'ds-parrots prepare'."
        ),
        "sources": [
            {"name": name, "path": f"tokens/{name}", "weight": round(n / total, 4)}
            for name, n in chars.items()
        ],
    }


def render(seed: int, knowledge_cfg: KnowledgeConfig, math_cfg: MathConfig) -> dict[str, bytes]:
    """Every file but the manifest: relative path -> bytes."""
    people = knowledge.generate(knowledge_cfg, seed)
    train, test = arithmetic.generate(math_cfg, seed)
    math_docs = [arithmetic.DOCUMENT.format(question=p.question, answer=p.answer) for p in train]
    chars = {"knowledge": sum(map(len, people.documents)), "math": sum(map(len, math_docs))}
    return {
        "corpus/knowledge.jsonl": _jsonl({"text": t} for t in people.documents),
        "corpus/math.jsonl": _jsonl({"text": t} for t in math_docs),
        "mixture.json": (json.dumps(_mixture(chars), indent=2) + "\n").encode(),
        "eval/triviaqa/train.jsonl": _jsonl(people.qa_train),
        "eval/triviaqa/validation.jsonl": _jsonl(people.qa_eval),
        "eval/gsm8k/train.jsonl": _jsonl(p.record() for p in train),
        "eval/gsm8k/test.jsonl": _jsonl(p.record() for p in test),
    }


def write_corpus(
    out: Path, seed: int, knowledge_cfg: KnowledgeConfig, math_cfg: MathConfig, force: bool = False
) -> Written:
    """Generate and write the corpus folder (see the module docstring); a bad size or --out fails first."""
    out = Path(out)
    knowledge.check(knowledge_cfg)
    arithmetic.check(math_cfg)
    check_out(out, force)
    files = render(seed, knowledge_cfg, math_cfg)
    summary = {
        rel: {
            "rows": data.count(b"\n") if rel.endswith(".jsonl") else None,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for rel, data in files.items()
    }
    manifest = {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "knowledge": asdict(knowledge_cfg),
        "math": asdict(math_cfg),
        "files": summary,
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    try:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        fsync_files(tmp)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Written(out, summary)


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished `tmp` folder at `out`; an old corpus there (checked by check_out) is removed after."""
    if out.is_dir() and any(out.iterdir()):
        old = out.with_name(temporary_path(out).name + ".old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)  # a missing or empty folder: rename() replaces an empty directory
    fsync(out.parent)
