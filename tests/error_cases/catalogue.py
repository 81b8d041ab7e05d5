"""The bad-input catalogue's machinery: writers of good inputs that the cases then damage, the Case record,
the runner that checks a case, and the docs/errors.md tables. The cases themselves are in
error_cases/{train,data,checkpoints}.py; tests/integration/bad_inputs/ runs them (DS_PARROTS_WRITE_ERRORS_DOC=1
python -m pytest tests/integration/bad_inputs regenerates docs/errors.md).

Commands run in-process (their `main(argv)`, as the console scripts call it) in a fresh tmp_path that is
also the working directory, so default outputs (runs/, sweeps/, ...) would land there and be seen.
Checkpoint files that carry a pickled payload (`os.system("touch pwned")`) must be refused unexecuted."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import torch

from helpers import REPO

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
    from ds_parrots.cli.train import parse
    from ds_parrots.models import build_model
    from ds_parrots.tasks import build_task
    from ds_parrots.training.recipes.synthetic import task_model
    from ds_parrots.training.setup import run_config_dict

    run = parse(["phonebook", *model_flags])
    cfg = task_model(run.model, build_task("phonebook", run.task))
    tag = run_dir / "checkpoints" / f"step{step:08d}"
    tag.mkdir(parents=True)
    (run_dir / "config.json").write_text(
        json.dumps(run_config_dict(run, cfg, task_name="phonebook"), default=str)
    )
    (run_dir / "checkpoints" / "latest").write_text(tag.name)
    module = _Payload(run_dir.parent / "pwned") if payload else build_model(cfg).state_dict()
    torch.save({"module": module, "dp_world_size": 1}, tag / "mp_rank_00_model_states.pt")
    return run_dir


def write_consolidated(path: Path, vocab_size: int, tokenizer: Optional[Path], max_seq_len: int = 64) -> Path:
    """A consolidated pre-training checkpoint (.safetensors + sidecar) of a tiny dense model."""
    from ds_parrots.checkpoints.consolidate import save_consolidated
    from ds_parrots.checkpoints.load import FORMAT, VERSION
    from ds_parrots.config import ModelConfig
    from ds_parrots.models import build_model

    cfg = ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=1, n_heads=4, max_seq_len=max_seq_len)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": dataclasses.asdict(cfg),
        "task_name": None,
        "task_config": None,
        "tokenizer": str(tokenizer) if tokenizer else None,
        "step": 1,
    }
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
        text = json.dumps(
            {
                "name": "m",
                "sources": sources
                if sources is not None
                else [{"name": "a", "path": "data/a", "weight": 1.0}],
            }
        )
    path.write_text(text)
    return path


def make_read_only(folder: Path) -> None:
    """A directory no one may write, root included: `chattr +i` where the file system and privileges allow it
    (root ignores permission bits), else chmod 555 when not root; the case is skipped where neither holds."""
    folder.mkdir(parents=True, exist_ok=True)
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode == 0:
        return
    if os.geteuid() == 0:
        pytest.skip("root writes a chmod 555 directory, and chattr +i is not available here")
    folder.chmod(0o555)


def undo_read_only(folder: Path) -> None:
    chattr = shutil.which("chattr")
    if chattr and folder.exists():
        subprocess.run([chattr, "-i", str(folder)], capture_output=True)
    if folder.exists():
        folder.chmod(0o755)


def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def wrapped_int16_tokens(tmp, assets):
    """uint16 ids past 32767 (a vocabulary over 32768) in a file whose header says int16: they read back
    negative, as when a corpus is written with a dtype too small for its tokenizer."""
    write_tokens(tmp / "data" / "a", docs=((5, 40000, 7, 8), (9, 10, 11), (12, 13)))
    patch_bytes(tmp / "data" / "a.idx", 17, bytes([3]))  # dtype code 3: int16
    write_mixture(tmp)


def replace_idx(tmp, assets, how):
    good_pretrain(tmp, assets)
    idx = tmp / "data" / "a.idx"
    idx.unlink()
    how(idx)


def weighted_mixture(*weights):
    """A mixture of two good sources with these weights, written as JSON text (Infinity is no Python literal)."""

    def setup(tmp, assets):
        write_tokens(tmp / "data" / "a")
        write_tokens(tmp / "data" / "b")
        sources = ", ".join(
            f'{{"name": "{n}", "path": "data/{n}", "weight": {w}}}' for n, w in zip("ab", weights)
        )
        write_mixture(tmp, text=f'{{"name": "m", "sources": [{sources}]}}')

    return setup


def named_mixture(name):
    return json.dumps({"name": name, "sources": [{"name": "a", "path": "data/a"}]})


def write_bench(
    tmp: Path, rows, name: str = "piqa", split: str = "validation", exist_ok: bool = False
) -> None:
    folder = tmp / "bench" / name
    folder.mkdir(parents=True, exist_ok=exist_ok)
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    (folder / f"{split}.jsonl").write_text(text)


PIQA = {"goal": "open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0}
GSM8K = {
    "question": "A parrot has 3 books and buys 4 more books for the phone book graph path. How many books "
    "does the parrot have now, after all of that?",
    "answer": "3 + 4 = 7\n#### 7",
}


def bench_eval(tmp: Path, assets, rows=None, max_seq_len: int = 64, **kw) -> None:
    write_consolidated(tmp / "m.safetensors", 400, assets["tokenizer"], max_seq_len)
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


PRETRAIN = (
    "train",
    "pretrain",
    *TINY,
    "--data.mixture",
    "{tmp}/mix.json",
    "--data.data-root",
    "{tmp}",
    "--data.seq-len",
    "4",
    "--data.val-sequences",
    "1",
    "--train.steps",
    "2",
    "--train.global-batch",
    "2",
    "--train.out-dir",
    "{tmp}/runs",
)
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
    cleanup: Optional[Callable] = None
    """cleanup(tmp) undoes what setup did that the test's tmp_path removal could not (chattr +i)."""


def C(id, kind, argv, expect, setup=None, **kw):
    return Case(id, kind, tuple(argv), tuple(expect), setup, **kw)


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _edit_config(run_dir: Path, **model) -> None:
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"].update(model)
    (run_dir / "config.json").write_text(json.dumps(cfg))


def _hf_folder(tmp: Path, **config) -> None:
    from ds_parrots.checkpoints.hf_export import export_hf
    from ds_parrots.config import ModelConfig
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


def snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
        for p in root.rglob("*")
    }


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


def check_case(case, tmp_path, assets, capsys, monkeypatch):
    """The body of every file's test_bad_input_is_one_line_and_writes_nothing."""
    monkeypatch.chdir(tmp_path)  # relative default outputs would land here

    def launched(*args, **kw):
        raise AssertionError("the command passed its checks and started a run")

    monkeypatch.setattr("ds_parrots.training.recipes.synthetic.open_run", launched)
    monkeypatch.setattr("ds_parrots.training.recipes.pretrain.open_run", launched)
    try:
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
        shown = shown.replace(str(tmp_path), "<tmp>")
        MESSAGES[case.id] = shown.replace(str(assets["tokenizer"]), "<tok.model>")
    finally:
        if case.cleanup is not None:
            case.cleanup(tmp_path)


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


# ---------------------------------------------------------------------------------------------------
# docs/errors.md lists every case
# ---------------------------------------------------------------------------------------------------

SECTIONS = {
    "flags": "Command-line flags",
    "mixture": "Mixture files (`--data.mixture`)",
    "tokens": "Token files (`.bin` / `.idx`)",
    "tokenizer": "Tokenizer files and text inputs",
    "corpus": "Synthetic corpora (`ds-parrots data synth-corpus`)",
    "checkpoint": "Checkpoints",
    "security": "Untrusted checkpoints (pickled code)",
    "benchmark": "Benchmark files (`ds-parrots-eval --bench-dir`)",
    "hostfile": "Hostfiles",
    "sweep": "Sweeps and reproductions",
    "results": "Result files (`ds-parrots-eval plot`)",
}


def render_tables(cases) -> str:
    out = []
    for kind, title in SECTIONS.items():
        out += [f"### {title}", "", "| case | command | message |", "|---|---|---|"]
        for c in cases:
            if c.kind == kind:
                cmd = " ".join([c.command, *c.argv])
                # The flags every pretrain case shares, and where runs go, say nothing about the case.
                cmd = cmd.replace(
                    " ".join(PRETRAIN), "train pretrain --preset tiny-dense --data.mixture {tmp}/mix.json ..."
                )
                cmd = cmd.replace(" --train.out-dir {tmp}/runs", "")
                cmd = cmd.replace("{tmp}", "<tmp>").replace("{tokenizer}", "<tok.model>")
                msg = MESSAGES.get(c.id, "").replace("|", "\\|")
                out.append(f"| `{c.id}` | `{cmd}` | {msg} |")
        out.append("")
    return "\n".join(out)


_TABLES = re.compile(
    r"(<!-- cases: generated by tests/integration/bad_inputs -->\n).*?(<!-- end of cases -->)", re.S
)
