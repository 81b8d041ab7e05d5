"""Verified checkpoints through real 2-rank runs (MoE, AutoEP, expert-parallel 2, ZeRO-2: model, optimizer and
per-expert files): a flipped byte, a truncation or a deleted file in the newest checkpoint is never loaded; the
resume continues from the previous checkpoint, says which one it skipped and why, and trains bit for bit as an
uninterrupted run; consolidate refuses the damaged one in one line naming the file."""

import shutil
from pathlib import Path

import pytest

from ds_parrots.cli.main import main as ds_parrots
from helpers import REPO, cpu_env, results, run_train, train_cmd

pytestmark = [pytest.mark.slow, pytest.mark.multirank]

ARGS = [
    "phonebook",
    "--preset",
    "tiny-moe",
    "--moe.backend",
    "autoep",
    "--moe.ep-size",
    "2",
    "--train.zero-stage",
    "2",
    "--task.book-size",
    "64",
    "--task.num-queries",
    "16",
    "--train.global-batch",
    "16",
    "--train.log-every",
    "1",
    "--train.no-progress",
    "--train.max-eval",
    "8",
    "--optim.lr",
    "3e-3",
    "--optim.warmup-frac",
    "0.0",
    "--train.steps",
    "8",
    "--train.save-every",
    "4",
    "--train.run-name",
    "run",
]

FILES = {
    "model": "mp_rank_00_model_states.pt",
    "optimizer": "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    "expert": "layer_1_expert_5_mp_rank_00_model_states.pt",
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """One uninterrupted run: checkpoints of steps 4 and 8, the reference losses."""
    out = tmp_path_factory.mktemp("clean")
    run_train(ARGS + ["--train.out-dir", str(out)], nproc=2)
    return out / "run"


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.unlink()


CASES = [(kind, how) for how in ("flip", "truncate") for kind in FILES] + [("optimizer", "delete")]


@pytest.mark.parametrize("kind,how", CASES, ids=[f"{h}-{k}" for k, h in CASES])
def test_damaged_newest_checkpoint_resumes_from_the_previous_bit_for_bit(clean, tmp_path, kind, how):
    run_dir = tmp_path / "run"
    shutil.copytree(clean, run_dir)
    name = FILES[kind]
    assert (run_dir / "checkpoints" / "step00000008" / name).is_file()  # the layout the test is about
    damage(run_dir / "checkpoints" / "step00000008" / name, how)

    proc = run_train(ARGS + ["--train.out-dir", str(tmp_path), "--train.resume"], nproc=2)
    skipped = [line for line in proc.stdout.splitlines() if "checkpoint step00000008 skipped" in line]
    assert len(skipped) == 1, proc.stdout[-3000:]
    why = {"flip": "checksum mismatch", "truncate": "truncated", "delete": "is missing"}[how]
    assert f"{name} " in skipped[0] and why in skipped[0] and "resuming from step00000004" in skipped[0]
    resumed, reference = results(run_dir)["loss_history"], results(clean)["loss_history"]
    assert [h["step"] for h in resumed] == [5, 6, 7, 8]
    for key in ("loss", "aux_loss", "z_loss", "lr"):
        assert [h[key] for h in resumed] == [h[key] for h in reference[4:]], key
    # The retrained step 8 replaced the damaged one and verifies.
    from ds_parrots.training.checkpoint_manifest import check_checksums

    assert check_checksums(run_dir / "checkpoints" / "step00000008") is None


def test_consolidate_refuses_a_damaged_checkpoint_naming_the_file(clean, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(clean, run_dir)
    damage(run_dir / "checkpoints" / "step00000008" / FILES["expert"], "flip")
    capsys.readouterr()
    assert ds_parrots(["consolidate", str(run_dir), "--out", str(tmp_path / "m.safetensors")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert FILES["expert"] in err[0] and "checksum mismatch" in err[0]
    assert str(run_dir / "checkpoints" / "step00000004") in err[0]  # the older one that verifies
    assert not (tmp_path / "m.safetensors").exists()
    # The older checkpoint, named, consolidates.
    out = tmp_path / "m4.safetensors"
    assert ds_parrots(["consolidate", str(run_dir / "checkpoints" / "step00000004"), "--out", str(out)]) == 0


def test_nonfinite_stop_names_the_newest_verified_checkpoint(clean, tmp_path):
    import subprocess

    run_dir = tmp_path / "run"
    shutil.copytree(clean, run_dir)
    damage(run_dir / "checkpoints" / "step00000008" / FILES["optimizer"], "flip")
    args = ARGS + ["--train.out-dir", str(tmp_path), "--train.resume", "--train.steps", "10"]
    proc = subprocess.run(
        train_cmd(args, 2),
        cwd=REPO,
        env=dict(cpu_env(), DS_PARROTS_FAULT="nan@6"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "step 6" in errors[0] and "step00000004" in errors[0] and "step00000008" not in errors[0]
