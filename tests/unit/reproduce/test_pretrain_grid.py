"""`ds-parrots reproduce pretrain` grids, planned without training: the tiny grid's MoEs match the dense models'
active parameters (same width) and total parameters (on the dense curve) as its description claims, the paper
grid is the paper's 17 models at L=20, a dry run prints every command and writes nothing, the paper scale emits
one training job per model, and flags that cannot apply are refused."""

import json

import pytest

from ds_parrots.cli.reproduce_pretrain import main, parse_args, plan
from ds_parrots.errors import ConfigError
from ds_parrots.reproduce.experiments import _config


def planned(scale, tmp_path, *extra):
    return plan(parse_args(["--scale", scale, "--out-dir", str(tmp_path), *extra]))


def by_name(runs):
    return {r.name.removeprefix("pretrain-").removesuffix("-s0"): r for r in runs.values()}


def test_tiny_grid_matches_active_and_total_parameters_as_claimed(tmp_path):
    runs = by_name(planned("tiny", tmp_path).runs)
    assert list(runs) == ["d32-dense", "d48-dense", "d64-dense", "d96-dense", "d32-e4", "d32-e8", "d32-e16"]
    total = {n: r.params["total"] for n, r in runs.items()}
    active = {n: r.params["active"] for n, r in runs.items()}
    for e in (4, 8, 16):
        moe = f"d32-e{e}"
        # matched active: the dense model of the MoE's width, plus the one more expert a top-2 MoE runs
        assert 0 < active[moe] / active["d32-dense"] - 1 < 0.10, moe
        assert total[moe] > active[moe]
        # on the dense curve: inside the dense models' range, so every MoE has a dense model of equal total
        assert total["d32-dense"] < total[moe] < total["d96-dense"], moe
    assert abs(total["d32-e8"] / total["d48-dense"] - 1) < 0.06
    assert abs(total["d32-e16"] / total["d64-dense"] - 1) < 0.06
    for r in runs.values():
        model = _config(r).model
        assert (model.n_layers, model.vocab_size, model.ffn, model.top_k) == (4, 2048, model.d_model, 2)
        assert model.max_seq_len >= 512  # gsm8k's prompt plus its 256 generated tokens


def test_paper_grid_is_the_papers_17_models_at_l20(tmp_path):
    p = planned("paper", tmp_path, "--mixture", "math")
    runs = by_name(p.runs)
    assert len(runs) == 17
    assert [n for n in runs if n.endswith("dense")] == [f"d{d}-dense" for d in (256, 512, 1024, 2048, 4096)]
    assert {n for n in runs if "-e" in n} == {f"d{d}-e{e}" for d in (256, 512, 1024) for e in (8, 16, 32, 64)}
    for r in runs.values():
        run = _config(r)
        assert (run.model.n_layers, run.model.vocab_size, run.data.mixture) == (20, 32000, "math")
        assert (run.train.steps, run.train.global_batch, run.data.seq_len) == (60_000, 512, 2048)
    for d in (256, 512, 1024):  # one width, one active size, whatever the experts
        actives = [runs[f"d{d}-e{e}"].params["active"] for e in (8, 16, 32, 64)]
        assert max(actives) / min(actives) < 1.02
    assert p.root == tmp_path / "pretrain-paper-math"


def test_smoke_grid_is_small(tmp_path):
    runs = planned("smoke", tmp_path).runs
    assert len(runs) == 3 and sum(r.keys["experts"] > 1 for r in runs.values()) == 1
    assert all(r.params["total"] < 50_000 and _config(r).train.steps == 30 for r in runs.values())


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path, capsys):
    assert main(["--scale", "tiny", "--out-dir", str(tmp_path), "--dry-run", "--steps", "7"]) == 0
    out = capsys.readouterr().out
    commands = [line.strip() for line in out.split("commands:")[1].splitlines() if line.strip()]
    assert [c.split()[1] for c in commands[:4]] == ["data", "tokenizer", "prepare", "prepare"]
    assert len(commands) == 4 + 7 * 4  # data steps, then train / consolidate / eval / gap per model
    assert sum("train.py pretrain" in c and "--train.steps 7" in c for c in commands) == 7
    assert sum(c.startswith("ds-parrots-eval gap") and "--tasks gsm8k" in c for c in commands) == 7
    assert "d32-e8-s0" in out and "total -3.7% vs d48-dense" in out
    assert not list(tmp_path.iterdir())


def test_paper_scale_emits_one_training_job_per_model(tmp_path, capsys):
    argv = ["--scale", "paper", "--out-dir", str(tmp_path), "--emit", "slurm", "--num-gpus", "8"]
    assert main(argv + ["--mixture", "math"]) == 0
    root = tmp_path / "pretrain-paper-math"
    jobs = sorted((root / "slurm").glob("*.sbatch"))
    assert len(jobs) == 17
    job = (root / "slurm" / "pretrain-d1024-e64-s0.sbatch").read_text()
    assert "--moe.ep-size 8" in job and "--preset paper-moe-d1024-e64" in job and "--data.mixture math" in job
    assert json.loads((root / "manifest.json").read_text())["grid"] == "reproduce-pretrain-paper"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scale", "tiny", "--bench-dir", "b"], "--bench-dir is for --scale paper"),
        (["--scale", "smoke", "--mixture=math"], "--mixture is for --scale paper"),
        (["--scale", "tiny", "--emit", "slurm"], "--emit slurm is for --scale paper"),
        (["--scale", "paper"], "pass --bench-dir"),
        (["--scale", "smoke", "--steps", "0"], "--steps=0 must be >= 1"),
    ],
)
def test_flags_that_cannot_apply_are_refused(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        main([*argv, "--out-dir", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_help_documents_every_flag(capsys):
    import dataclasses

    from tyro._docstrings import get_field_docstring

    from ds_parrots.cli.reproduce import main as reproduce
    from ds_parrots.cli.reproduce_pretrain import PretrainArgs

    fields = dataclasses.fields(PretrainArgs)
    assert [f.name for f in fields if not get_field_docstring(PretrainArgs, f.name, ())] == []
    with pytest.raises(SystemExit) as stop:
        reproduce(["pretrain", "--help"])
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    assert all(f"--{f.name.replace('_', '-')}" in shown for f in fields if f.name != "scale")
    assert "--scale {smoke,tiny,paper}" in shown and "report.md" in shown
