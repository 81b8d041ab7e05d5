"""`ds-parrots prepare` and `ds-parrots tokenizer train` as commands: they train a tokenizer and prepare with it,
--help documents every flag, bad input is one line with exit 2, SIGTERM mid-prepare leaves nothing."""

import json
import subprocess
import sys

import pytest

from ds_parrots.cli.data import PrepareArgs, TokenizerTrainArgs
from ds_parrots.data.indexed import IndexedDataset
from helpers import REPO, cpu_env
from text_corpus import english_lines, train_tiny

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("tok"))


def documents(n: int, seed: int = 0) -> list[str]:
    """n documents of 1-6 lines each, some with non-ASCII characters."""
    lines = english_lines(4 * n, seed)
    return [
        ("\n".join(lines[4 * i : 4 * i + 1 + i % 4]) + (" Ωmega" if i % 5 == 0 else "")) for i in range(n)
    ]


def write_jsonl(path, texts, field="text"):
    path.write_text("".join(json.dumps({"id": i, field: t}) + "\n" for i, t in enumerate(texts)))
    return path


def expected(tok, texts):
    return [tok.encode(t) + [tok.eos_id] for t in texts]


def read_back(prefix):
    ds = IndexedDataset(prefix)
    return [ds[i].tolist() for i in range(len(ds))]


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", *map(str, args)],
        cwd=REPO,
        env={**cpu_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_trains_a_tokenizer_and_prepares_with_it(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(english_lines(300)) + "\n")
    proc = cli("tokenizer", "train", "--input", corpus, "--vocab-size", 400, "--output", tmp_path / "tok")
    assert proc.returncode == 0, proc.stderr
    assert "trained 400-piece bpe tokenizer" in proc.stdout and "unk=0 bos=1 eos=2" in proc.stdout

    texts = documents(40)
    data = write_jsonl(tmp_path / "a.jsonl", texts + [""])
    proc = cli(
        "prepare",
        "--input",
        data,
        "--tokenizer",
        tmp_path / "tok.model",
        "--output",
        tmp_path / "out" / "a",
        "--num-proc",
        2,
        "--skip-empty",
    )
    assert proc.returncode == 0, proc.stderr
    assert "prepared 40 documents (1 empty skipped)" in proc.stdout and "a.idx" in proc.stdout
    from ds_parrots.data.tokenizer import SentencePieceTokenizer

    assert read_back(tmp_path / "out" / "a") == expected(
        SentencePieceTokenizer(tmp_path / "tok.model"), texts
    )


@pytest.mark.parametrize(
    "command,cls", [(["prepare"], PrepareArgs), (["tokenizer", "train"], TokenizerTrainArgs)]
)
def test_cli_help_lists_every_flag_with_its_docstring(command, cls):
    import dataclasses

    from tyro._docstrings import get_field_docstring

    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.replace("│", " ").split())
    for f in dataclasses.fields(cls):
        assert f"--{f.name.replace('_', '-')}" in text
        doc = get_field_docstring(cls, f.name, ())
        assert doc and " ".join(doc.split()[:4]) in text, f.name


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["prepare", "--input", "missing.jsonl", "--tokenizer", "tok.model", "--output", "o"],
            "error: input files not found: missing.jsonl",
        ),
        (
            ["prepare", "--input", "some-org/some-dataset", "--tokenizer", "tok.model", "--output", "o"],
            "error: input 'some-org/some-dataset' is not a local file, and loading it as a Hugging Face Hub dataset failed",  # noqa: E501
        ),
        (
            ["tokenizer", "train", "--input", "missing.txt", "--output", "new"],
            "error: input files not found: missing.txt",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tok, tmp_path, args, message):
    (tmp_path / "tok.model").write_bytes(tok.path.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", *args],
        cwd=tmp_path,
        env={**cpu_env(), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.model"]  # nothing written


def test_cli_sigterm_mid_prepare_cleans_up(tok, tmp_path):
    import os
    import signal
    import time

    block = "".join(json.dumps({"text": t}) + "\n" for t in documents(200))
    (tmp_path / "big.jsonl").write_text(block * 150)  # ~13 MB: seconds of work, far more than the wait below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ds_parrots.cli",
            "prepare",
            "--input",
            tmp_path / "big.jsonl",
            "--tokenizer",
            tok.path,
            "--output",
            tmp_path / "out" / "big",
            "--num-proc",
            "2",
        ],
        cwd=REPO,
        env=cpu_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (
        not (tmp_path / "out" / "big.bin.tmp").exists()
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    time.sleep(0.2)  # the pool is working now
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted; nothing written")
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []
