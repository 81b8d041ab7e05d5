"""Save and resume training checkpoints (DeepSpeed's format, one tag per step), atomically.

Layout of a run directory:
    run_dir/config.json                the run's full configuration
    run_dir/checkpoints/latest         tag of the newest complete checkpoint (replaced atomically, last)
    run_dir/checkpoints/step00001000/  DeepSpeed model, optimizer and expert files of that step, and
        ds_parrots_complete.json       written once every rank's files are written and flushed to disk

A save goes: every rank writes its DeepSpeed files (DeepSpeed's own `latest` is not written), hashing each as
it is written, and fsyncs them; the ranks gather their file records; rank 0 fsyncs the tag directory, writes the
completion marker (every file with its size and checksum, training/checkpoint_manifest.py), then points `latest`
at the tag (write to a temporary file, fsync, rename), then prunes old checkpoints (--train.keep-last). A process
killed at any moment leaves `latest` on a complete checkpoint; a directory without the marker is debris of an
interrupted save, never loaded and removed by the next save of that step.

A resume loads the newest checkpoint whose files verify against its marker (every rank hashes a share of the
files before DeepSpeed reads any) and says which newer one it skipped and why; nothing that fails is loaded.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError, RunAborted
from ds_parrots.fileio import fsync_files, write_text_atomic
from ds_parrots.training import checkpoint_manifest as manifest
from ds_parrots.training.checkpoint_manifest import COMPLETE_FILE


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_tag(step: int) -> str:
    return f"step{step:08d}"


def is_complete(tag_dir: Path) -> bool:
    return (Path(tag_dir) / COMPLETE_FILE).is_file()


def tags(ckpt_dir: Path) -> list[str]:
    """Step tags under a checkpoints/ directory, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted(p.name for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step"))


def resume_tag(ckpt_dir: Path) -> Optional[str]:
    """The checkpoint to continue from: the tag `latest` names if it is complete, else the newest complete one.
    Checkpoints written before completion markers existed (none has one) are trusted as `latest` names them."""
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest"
    named = latest.read_text().strip() if latest.is_file() else None
    complete = [t for t in tags(ckpt_dir) if is_complete(ckpt_dir / t)]
    if named and (ckpt_dir / named).is_dir() and (named in complete or not complete):
        return named
    return complete[-1] if complete else None


def latest_tag(run_dir: Path) -> Optional[str]:
    return resume_tag(checkpoint_dir(run_dir))


def candidates(ckpt_dir: Path) -> list[str]:
    """The checkpoints a resume may continue from, in order of preference: resume_tag's, then the older
    complete ones, newest first. A complete checkpoint newer than `latest` belongs to a timeline a resume
    abandoned (its checkpoint failed verification) and is not one."""
    first = resume_tag(ckpt_dir)
    if first is None:
        return []
    return [first] + [t for t in reversed(tags(ckpt_dir)) if t < first and is_complete(Path(ckpt_dir) / t)]


def newest_verified(ckpt_dir: Path, exclude: Optional[str] = None) -> Optional[str]:
    """The newest candidate checkpoint (other than `exclude`) that verifies fully; None if none does."""
    return next(
        (t for t in candidates(ckpt_dir) if t != exclude and manifest.verify(Path(ckpt_dir) / t) is None),
        None,
    )


def latest_path(run_dir: Path) -> Optional[str]:
    """The directory of the newest checkpoint that verifies, the one a resume would continue from, for
    messages; None if there is none."""
    tag = newest_verified(checkpoint_dir(run_dir))
    return str(checkpoint_dir(run_dir) / tag) if tag else None


def require_resumable(run_dir: Path) -> str:
    """The tag to resume from: the newest candidate whose files are all there at their recorded sizes (a
    stat each; the checksums are checked collectively by load()). A ConfigError says what is missing."""
    ckpt_dir = checkpoint_dir(run_dir)
    found = candidates(ckpt_dir)
    if not found:
        raise ConfigError(
            f"--train.resume: no checkpoint in {ckpt_dir} (no 'latest' tag there); "
            "train without --train.resume first, or point --train.out-dir/--train.run-name at the "
            "run to continue"
        )
    problems = []
    for tag in found:
        problem = manifest.check_files(ckpt_dir / tag)
        if problem is None:
            return tag
        problems.append(f"{tag}: {problem}")
    raise ConfigError(
        f"--train.resume: no checkpoint of {run_dir} is intact ({'; '.join(problems[:3])}); restore the files "
        "from a copy, or train again without --train.resume in a new --train.run-name"
    )


# Fields a resumed run may change: how long it runs and how it logs, evaluates and saves. Everything
# else (task, model, MoE, optimizer, batch, seed, ZeRO stage, precision) shapes the trajectory, and a
# mismatch would silently continue a different experiment from the checkpoint.
RESUMABLE_CHANGES = {
    "train.steps",
    "train.resume",
    "train.save_every",
    "train.log_every",
    "train.eval_every",
    "train.eval_batch",
    "train.max_eval",
    "train.num_workers",
    "train.progress",
    "train.cache_dir",
    "train.micro_batch",
    "train.out_dir",
    "train.run_name",
    "train.init_from",
    "train.init_optimizer",
    "train.keep_last",
    "train.on_nonfinite",
    "train.collective_timeout",
    "train.activation_checkpointing",
    "train.preempt_signals",
    "train.save_every_minutes",
    "train.peak_tflops",
    # Where the data lives may move between jobs; what it is (mixture, seq_len) may not.
    "data.data_root",
    "data.tokenizer",
}


def flatten_config(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_config(v, key + "."))
        else:
            out[key] = v
    return out


def check_writable(run_dir: Path) -> None:
    """Refuse, before launch and without leaving anything behind, a run directory that cannot be written: its
    nearest existing parent, and the run's own checkpoints/ and tensorboard/ where they already exist (a resumed
    run, or one whose checkpoints/ alone is read-only)."""
    existing = Path(run_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot create the run directory {run_dir}: {existing} is a file; choose another "
            "--train.out-dir or --train.run-name"
        )
    for folder in (existing, Path(run_dir) / "checkpoints", Path(run_dir) / "tensorboard"):
        if folder != existing and not folder.exists():
            continue
        if not folder.is_dir():
            raise ConfigError(
                f"cannot write the run directory {run_dir}: {folder} is a file, not a directory; move it away "
                "or choose another --train.run-name"
            )
        # A real write, not os.access: root passes os.access on a chmod 555 directory (and can write it), and
        # an NFS server may refuse what the client's permission bits allow. An O_TMPFILE file has no name, so
        # nothing is ever seen in the directory.
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise ConfigError(
                f"cannot write the run directory {run_dir}: {folder} is not writable ({e.strerror}); fix its "
                "permissions, mount or attributes (lsattr), or choose another --train.out-dir"
            ) from None


def check_run_dir(run_dir: Path, config: dict, resume: bool) -> None:
    """Refuse, before launch, to overwrite a run's checkpoints or to resume it under another config."""
    tag = latest_tag(run_dir)
    if not resume:
        if tag is not None:
            raise ConfigError(
                f"{run_dir} already holds checkpoint {tag}: pass --train.resume to continue that run, "
                "or a new --train.run-name / --train.out-dir to start another (nothing was "
                "overwritten)"
            )
        return
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        return
    saved = flatten_config(json.loads(saved_path.read_text()))
    new = flatten_config(json.loads(json.dumps(config, default=str)))
    diff = sorted(
        k for k in saved.keys() | new.keys() if k not in RESUMABLE_CHANGES and saved.get(k) != new.get(k)
    )
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
        more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
        raise ConfigError(
            f"--train.resume: {run_dir} was trained with a different configuration ({shown}{more}); "
            "resume with the same flags, changing only steps, micro batch, logging, eval or saving"
        )


def save(
    engine,
    run_dir: Path,
    step: int,
    client_state: dict,
    topology: Optional[dict] = None,
    keep_last: int = 0,
    on_files_written: Optional[Callable[[], None]] = None,
) -> str:
    """Collective: every rank calls it. Returns the tag written. `topology` (world size, expert-parallel
    size, ZeRO stage) is recorded beside DeepSpeed's files so that a resume can be checked before launch.
    A failed write (full disk, unwritable directory) raises RunAborted naming the checkpoint left intact.
    `on_files_written` runs on every rank once its own files are on disk, before the checkpoint is complete."""
    import torch.distributed as dist

    ckpt_dir, tag = checkpoint_dir(run_dir), step_tag(step)
    tag_dir, rank = ckpt_dir / tag, dist.get_rank()
    try:
        if rank == 0 and tag_dir.exists():
            # Debris of an interrupted save of this step, or a checkpoint of it that a resume skipped because
            # it failed verification: either way not one to keep, and DeepSpeed's files must not mix with it.
            shutil.rmtree(tag_dir)
        dist.barrier()
        with manifest.RecordWrites(engine, tag_dir) as written:
            engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=client_state, save_latest=False)
        fsync_files(tag_dir)
        if on_files_written is not None:
            on_files_written()
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, written.records)  # and so every rank's files are on disk
        if rank == 0:
            if topology is not None:
                write_text_atomic(tag_dir / TOPOLOGY_FILE, json.dumps(topology) + "\n")
            fsync_files(tag_dir)
            body = manifest.marker(step, tag_dir, gathered)
            write_text_atomic(tag_dir / COMPLETE_FILE, json.dumps(body, indent=1) + "\n")
            write_text_atomic(ckpt_dir / "latest", tag)
            prune(ckpt_dir, keep_last)
    except (OSError, RuntimeError) as e:
        from ds_parrots.parallel.health import is_collective_failure

        if is_collective_failure(e):
            raise  # a lost peer, not a write failure: the training loop names the rank
        # torch.save reports a failed write as a RuntimeError from its zip writer ("unexpected pos", "file write
        # failed"): say what it most likely means.
        cause = (
            f"{e.strerror} ({e.filename or tag_dir})"
            if isinstance(e, OSError) and e.strerror
            else f"a write came up short, as on a full disk ({str(e).strip().splitlines()[0][:120]})"
        )
        if dist.get_world_size() == 1:
            shutil.rmtree(tag_dir, ignore_errors=True)  # give the space back; with peers, the next save does
        intact = resume_tag(ckpt_dir)
        raise RunAborted(
            f"could not write checkpoint {tag_dir} on rank {rank}: {cause}; {_free_space(ckpt_dir)}; "
            + (
                f"the previous checkpoint {ckpt_dir / intact} is intact and 'latest' still names it: "
                "free space (or fix the directory's permissions) and rerun with --train.resume"
                if intact and intact != tag
                else "no earlier checkpoint exists; free space (or fix "
                "the directory's permissions) and start the run again"
            )
        ) from None
    dist.barrier()
    manifest.remember(tag_dir, None)  # hashed as it was written
    return tag


def _free_space(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 2**30:.2f} GiB free there"
    except OSError:
        return "free space unknown"


def prune(ckpt_dir: Path, keep_last: int) -> list[str]:
    """Delete all but the newest `keep_last` complete checkpoints (0: keep all), and the debris of interrupted
    saves older than the newest complete one. Never the tag `latest` names; returns the tags removed."""
    ckpt_dir = Path(ckpt_dir)
    complete = [t for t in tags(ckpt_dir) if is_complete(ckpt_dir / t)]
    if not complete:
        return []  # nothing is known good: delete nothing
    keep = set(complete[-keep_last:] if keep_last > 0 else complete) | {resume_tag(ckpt_dir)}
    newest = complete[-1]
    doomed = [t for t in tags(ckpt_dir) if t not in keep and (t in complete or t < newest)]
    for t in doomed:
        shutil.rmtree(ckpt_dir / t)
    return doomed


TOPOLOGY_FILE = "ds_parrots_topology.json"


def check_resume_topology(run_dir: Path, world_size: int) -> None:
    """DeepSpeed reloads its ZeRO partitions only at the world size that wrote them: refuse another one
    before launch, and say how to continue instead."""
    tag = require_resumable(run_dir) if latest_tag(run_dir) else None
    path = checkpoint_dir(run_dir) / tag / TOPOLOGY_FILE if tag else None
    if path is None or not path.is_file():
        return
    saved = json.loads(path.read_text())
    if saved.get("world_size") != world_size:
        raise ConfigError(
            f"--train.resume: checkpoint {tag} of {run_dir} was saved by {saved.get('world_size')} "
            f"ranks and this launch has {world_size}; ZeRO partitions reload only at the same world "
            f"size. Relaunch with {saved.get('world_size')} ranks, or continue at this size in a new "
            f"run: --train.init-from {run_dir} --train.run-name <new> (weights, AdamW state and step "
            "carry over)"
        )


def check_resume_files(run_dir: Path) -> None:
    """Every file of the checkpoint to resume loads with weights_only=True (checked on each rank, before
    launch): DeepSpeed's engine.load_checkpoint then unpickles them with weights_only=False, so a file
    planted in the run directory would otherwise run its code."""
    from ds_parrots.parallel.checkpoint_format import check_checkpoint_files

    check_checkpoint_files(checkpoint_dir(run_dir) / require_resumable(run_dir))


def choose_verified(run_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    """Collective: (the newest candidate every rank agrees verifies, [(newer tag skipped, why)]). Each rank
    checks the stat of every file and hashes its share of them; the verdicts are gathered, so all ranks
    choose alike even if their views differ. Raises ConfigError, on every rank, if none verifies."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    ckpt_dir, skipped = checkpoint_dir(run_dir), []
    for tag in candidates(ckpt_dir):
        tag_dir = ckpt_dir / tag
        key = manifest.marker_key(tag_dir)
        mine = (
            manifest.verdicts[key]
            if key in manifest.verdicts
            else manifest.check_checksums(tag_dir, manifest.share(tag_dir, rank, world))
        )
        verdicts = [None] * world
        dist.all_gather_object(verdicts, mine)
        problem = next((v for v in verdicts if v), None)
        manifest.remember(tag_dir, problem)
        if problem is None:
            return tag, skipped
        skipped.append((tag, problem))
    why = "; ".join(f"{t}: {p}" for t, p in skipped[:3]) or "none is complete"
    raise ConfigError(
        f"--train.resume: no checkpoint of {run_dir} verifies ({why}); restore the files from a copy, or "
        "train again without --train.resume in a new --train.run-name"
    )


def load(engine, run_dir: Path, log: Callable[[str], None] = lambda line: None) -> dict:
    """Collective: restores model, optimizer, scheduler from the newest checkpoint that verifies and returns
    the client state saved with it. `log` gets one line for what was skipped or could not be verified."""
    tag, skipped = choose_verified(run_dir)
    ckpt_dir = checkpoint_dir(run_dir)
    if skipped:
        from ds_parrots.parallel.checkpoint_format import check_checkpoint_files

        check_checkpoint_files(ckpt_dir / tag)  # checked before launch was the skipped one
        log(
            "; ".join(f"checkpoint {t} skipped: {p}" for t, p in skipped)
            + f"; resuming from {tag} ({manifest.describe(ckpt_dir / tag)})"
        )
    elif not manifest.has_checksums(ckpt_dir / tag):
        log(f"checkpoint {tag}: {manifest.describe(ckpt_dir / tag)}")
    path, client_state = engine.load_checkpoint(str(ckpt_dir), tag=tag)
    if path is None:
        raise ConfigError(f"DeepSpeed could not load checkpoint {checkpoint_dir(run_dir) / tag}")
    return client_state or {}


def write_config(run_dir: Path, config: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        Path(run_dir) / "config.json", json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
    )
