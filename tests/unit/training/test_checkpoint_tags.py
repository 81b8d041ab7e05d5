"""Which checkpoint a resume takes, and which --train.keep-last deletes: only complete ones count."""

import json
from pathlib import Path

from ds_parrots.training.checkpoint import COMPLETE_FILE, prune, resume_tag


def make_tag(ckpt: Path, step: int, complete: bool) -> None:
    d = ckpt / f"step{step:08d}"
    d.mkdir(parents=True)
    (d / "mp_rank_00_model_states.pt").write_bytes(b"x")
    if complete:
        (d / COMPLETE_FILE).write_text(json.dumps({"step": step}))


def test_resume_tag_skips_unfinished_checkpoints(tmp_path):
    ckpt = tmp_path / "checkpoints"
    make_tag(ckpt, 4, True)
    make_tag(ckpt, 8, False)
    (ckpt / "latest").write_text("step00000008")  # e.g. written by an older tool before the save finished
    assert resume_tag(ckpt) == "step00000004"
    (ckpt / "latest").write_text("step00000004")
    assert resume_tag(ckpt) == "step00000004"
    legacy = tmp_path / "legacy"  # checkpoints from before completion markers: `latest` is trusted
    make_tag(legacy, 2, False)
    (legacy / "latest").write_text("step00000002")
    assert resume_tag(legacy) == "step00000002"


def test_keep_last_never_deletes_the_only_complete_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    make_tag(ckpt, 2, False)
    make_tag(ckpt, 4, False)
    assert prune(ckpt, 1) == [] and len(list(ckpt.glob("step*"))) == 2  # nothing known good: delete nothing
    make_tag(ckpt, 6, True)
    make_tag(ckpt, 8, False)  # a save in progress (or interrupted) newer than the last complete one: kept
    (ckpt / "latest").write_text("step00000006")
    assert prune(ckpt, 1) == ["step00000002", "step00000004"]
    assert sorted(p.name for p in ckpt.glob("step*")) == ["step00000006", "step00000008"]
    make_tag(ckpt, 10, True)
    make_tag(ckpt, 12, True)
    (ckpt / "latest").write_text("step00000010")  # `latest` is kept even when older than the newest N
    assert prune(ckpt, 1) == ["step00000006", "step00000008"]
    assert sorted(p.name for p in ckpt.glob("step*")) == ["step00000010", "step00000012"]
