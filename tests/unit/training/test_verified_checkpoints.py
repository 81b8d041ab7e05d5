"""Completion markers with sizes and checksums (training/checkpoint_manifest.py): what each damage is called,
which checkpoint a resume picks before launch, and that markers of older versions still pass."""

import json
from pathlib import Path

import pytest
import torch

from ds_parrots.checkpoints.load import resolve, verified
from ds_parrots.errors import ConfigError
from ds_parrots.training import checkpoint_manifest as manifest
from ds_parrots.training.checkpoint import check_resume_files, latest_path, require_resumable
from helpers import REPO

FIXTURES = REPO / "tests" / "fixtures" / "pre_refactor_runs"
RANK_FILE = "zero_pp_rank_1_mp_rank_00_optim_states.pt"


def write_checkpoint(ckpt: Path, step: int, checksums: bool = True) -> Path:
    """A step directory of two tensor files and its marker, as save() leaves it."""
    tag_dir = ckpt / f"step{step:08d}"
    tag_dir.mkdir(parents=True)
    torch.save({"module": {"w": torch.arange(1000.0) + step}}, tag_dir / "mp_rank_00_model_states.pt")
    torch.save({"optimizer_state_dict": {"m": torch.ones(5000) * step}}, tag_dir / RANK_FILE)
    body = manifest.marker(step, tag_dir, [{}])
    if not checksums:
        body = {"step": step, "files": body["files"]}
    (tag_dir / manifest.COMPLETE_FILE).write_text(json.dumps(body))
    (ckpt / "latest").write_text(tag_dir.name)
    return tag_dir


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_marker_records_size_and_checksum_of_every_file(tmp_path):
    tag_dir = write_checkpoint(tmp_path / "checkpoints", 4)
    body = json.loads((tag_dir / manifest.COMPLETE_FILE).read_text())
    assert body["files"] == sorted(["mp_rank_00_model_states.pt", RANK_FILE])  # readable as before
    assert body["hash"] == "xxh3_64"
    for name in body["files"]:
        assert body["checksums"][name] == manifest.digest(tag_dir / name)
        assert body["checksums"][name]["size"] == (tag_dir / name).stat().st_size
    assert manifest.check_checksums(tag_dir) is None


def test_each_damage_is_one_text_naming_the_file(tmp_path):
    tag_dir = write_checkpoint(tmp_path / "checkpoints", 4)
    saved = (tag_dir / RANK_FILE).read_bytes()
    flip(tag_dir / RANK_FILE)
    assert manifest.check_files(tag_dir) is None  # a flipped bit keeps the size: only the checksum sees it
    mismatch = f"{RANK_FILE} checksum mismatch (its contents changed since it was saved)"
    assert manifest.check_checksums(tag_dir) == mismatch
    size = (tag_dir / RANK_FILE).stat().st_size
    (tag_dir / RANK_FILE).write_bytes((tag_dir / RANK_FILE).read_bytes()[:100])
    assert (
        manifest.check_files(tag_dir)
        == f"{RANK_FILE} is 100 bytes, {size} when saved (truncated or overwritten)"
    )
    (tag_dir / RANK_FILE).unlink()
    assert manifest.check_files(tag_dir) == f"{RANK_FILE} is missing"
    (tag_dir / RANK_FILE).write_bytes(saved)
    assert manifest.check_checksums(tag_dir) is None
    (tag_dir / "zero_pp_rank_2_mp_rank_00_optim_states.pt").write_bytes(b"x")
    assert (
        "zero_pp_rank_2_mp_rank_00_optim_states.pt was not saved with this checkpoint"
        in manifest.check_files(tag_dir)
    )
    (tag_dir / manifest.COMPLETE_FILE).write_text("{")
    assert manifest.check_files(tag_dir).startswith(f"{manifest.COMPLETE_FILE} is unreadable")


def test_resume_before_launch_skips_a_checkpoint_with_a_missing_or_truncated_file(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints"
    write_checkpoint(ckpt, 4)
    eight = write_checkpoint(ckpt, 8)
    assert require_resumable(tmp_path / "run") == "step00000008"
    (eight / RANK_FILE).write_bytes((eight / RANK_FILE).read_bytes()[:-10])
    assert require_resumable(tmp_path / "run") == "step00000004"
    check_resume_files(tmp_path / "run")  # the safety check reads the one chosen, not the damaged one
    (ckpt / "step00000004" / RANK_FILE).unlink()
    with pytest.raises(ConfigError) as e:
        require_resumable(tmp_path / "run")
    assert "no checkpoint of" in str(e.value) and f"step00000008: {RANK_FILE} is" in str(e.value)
    assert f"step00000004: {RANK_FILE} is missing" in str(e.value)


def test_messages_name_the_newest_checkpoint_that_verifies(tmp_path):
    run = tmp_path / "run"
    write_checkpoint(run / "checkpoints", 4)
    eight = write_checkpoint(run / "checkpoints", 8)
    flip(eight / "mp_rank_00_model_states.pt")
    assert latest_path(run) == str(run / "checkpoints" / "step00000004")
    other = tmp_path / "other"
    write_checkpoint(other / "checkpoints", 4)
    assert latest_path(other) == str(other / "checkpoints" / "step00000004")


def test_consolidate_path_refuses_damage_and_names_the_older_checkpoint(tmp_path):
    run = tmp_path / "run"
    four = write_checkpoint(run / "checkpoints", 4)
    eight = write_checkpoint(run / "checkpoints", 8)
    flip(eight / RANK_FILE)
    tag_dir, _ = resolve(run)  # a stat each: a flipped byte passes, its checksum does not
    with pytest.raises(ConfigError) as e:
        verified(tag_dir)
    assert str(e.value) == (
        f"checkpoint {eight} failed verification: {RANK_FILE} checksum mismatch (its contents changed since "
        f"it was saved); use the older checkpoint {four}, which verifies"
    )
    (eight / RANK_FILE).unlink()
    with pytest.raises(ConfigError, match=f"{RANK_FILE} is missing; use the older checkpoint {four}"):
        resolve(run)


def test_markers_of_older_versions_still_pass(tmp_path):
    old = write_checkpoint(tmp_path / "old" / "checkpoints", 3, checksums=False)
    flip(old / RANK_FILE)  # nothing recorded to catch it with: the file list is what can be checked
    assert manifest.check_checksums(old) is None
    assert "no checksums recorded" in manifest.describe(old)
    (old / RANK_FILE).unlink()
    assert manifest.check_files(old) == f"{RANK_FILE} is missing"
    for name in ("autoep-ep2", "native-1rank", "dense-z3"):  # written by the code before checksums existed
        tag_dir = FIXTURES / name / "checkpoints" / "step00000003"
        assert manifest.check_checksums(tag_dir) is None and not manifest.has_checksums(tag_dir)
        assert require_resumable(FIXTURES / name) == "step00000003"
    legacy = tmp_path / "legacy" / "step00000002"  # before completion markers: trusted as `latest` names it
    legacy.mkdir(parents=True)
    (legacy / "mp_rank_00_model_states.pt").write_bytes(b"x")
    assert manifest.check_checksums(legacy) is None and "no completion marker" in manifest.describe(legacy)


def test_share_gives_every_file_to_exactly_one_rank_balanced_by_size(tmp_path):
    tag_dir = write_checkpoint(tmp_path / "checkpoints", 4)
    for i in range(6):
        torch.save(torch.zeros(100 * (i + 1)), tag_dir / f"layer_0_expert_{i}_mp_rank_00_model_states.pt")
    (tag_dir / manifest.COMPLETE_FILE).write_text(json.dumps(manifest.marker(4, tag_dir, [{}])))
    shares = [manifest.share(tag_dir, r, 3) for r in range(3)]
    names = sorted(n for s in shares for n in s)
    assert names == sorted(json.loads((tag_dir / manifest.COMPLETE_FILE).read_text())["checksums"])
    assert all(shares)


def test_record_writes_hashes_what_deepspeeds_checkpoint_engine_writes(tmp_path):
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    class Engine:
        checkpoint_engine = TorchCheckpointEngine(None)

    engine, tag_dir = Engine(), tmp_path / "step00000001"
    tag_dir.mkdir()
    with manifest.RecordWrites(engine, tag_dir) as written:
        engine.checkpoint_engine.save({"w": torch.ones(3)}, str(tag_dir / "a.pt"))
        engine.checkpoint_engine.save(state_dict={"w": torch.ones(4)}, path=str(tag_dir / "b.pt"))
        engine.checkpoint_engine.save({"w": torch.ones(5)}, str(tmp_path / "elsewhere.pt"))
    assert written.records == {n: manifest.digest(tag_dir / n) for n in ("a.pt", "b.pt")}
    assert "save" not in vars(engine.checkpoint_engine)  # the engine's own method again
    body = manifest.marker(1, tag_dir, [written.records])
    assert body["checksums"]["a.pt"] == manifest.digest(tag_dir / "a.pt")
