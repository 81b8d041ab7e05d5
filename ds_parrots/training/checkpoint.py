"""Save and resume training checkpoints (DeepSpeed's format, one tag per step), atomically.

Layout of a run directory:
    run_dir/config.json                the run's full configuration
    run_dir/checkpoints/latest         tag of the newest complete checkpoint (replaced atomically, last)
    run_dir/checkpoints/step00001000/  DeepSpeed model, optimizer and expert files of that step, and
        ds_parrots_complete.json       written once every rank's files are written and flushed to disk

A save goes: every rank writes its DeepSpeed files (DeepSpeed's own `latest` is not written) and fsyncs them;
barrier; rank 0 fsyncs the tag directory, writes the completion marker, then points `latest` at the tag (write
to a temporary file, fsync, rename), then prunes old checkpoints (--train.keep-last). A process killed at any
moment leaves `latest` on a complete checkpoint; a directory without the marker is debris of an interrupted save,
never loaded and removed by the next save of that step.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError, RunAborted
from ds_parrots.fileio import fsync_files, write_text_atomic

COMPLETE_FILE = "ds_parrots_complete.json"


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


def latest_path(run_dir: Path) -> Optional[str]:
    """The directory of the checkpoint a resume would continue from, for messages; None if there is none."""
    tag = latest_tag(run_dir)
    return str(checkpoint_dir(run_dir) / tag) if tag else None


def require_resumable(run_dir: Path) -> str:
    """The tag to resume from, or a ConfigError that says what is missing (checked before launch)."""
    tag = latest_tag(run_dir)
    if tag is None:
        raise ConfigError(
            f"--train.resume: no checkpoint in {checkpoint_dir(run_dir)} (no 'latest' tag there); "
            "train without --train.resume first, or point --train.out-dir/--train.run-name at the "
            "run to continue"
        )
    return tag


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
    "train.keep_last",
    "train.on_nonfinite",
    "train.collective_timeout",
    "train.activation_checkpointing",
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
    """Refuse, before launch and without creating anything, a run directory that cannot be written."""
    existing = Path(run_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot create the run directory {run_dir}: {existing} is a file; choose another "
            "--train.out-dir or --train.run-name"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the run directory {run_dir}: {existing} is not writable (permissions or a "
            "read-only file system); choose another --train.out-dir"
        )


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
        if rank == 0 and tag_dir.exists() and not is_complete(tag_dir):
            shutil.rmtree(tag_dir)  # debris of a save of this step that was interrupted
        dist.barrier()
        engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=client_state, save_latest=False)
        fsync_files(tag_dir)
        if on_files_written is not None:
            on_files_written()
        dist.barrier()  # every rank's files are on disk
        if rank == 0:
            if topology is not None:
                write_text_atomic(tag_dir / TOPOLOGY_FILE, json.dumps(topology) + "\n")
            fsync_files(tag_dir)
            files = sorted(str(p.relative_to(tag_dir)) for p in tag_dir.rglob("*") if p.is_file())
            write_text_atomic(
                tag_dir / COMPLETE_FILE, json.dumps({"step": step, "files": files}, indent=1) + "\n"
            )
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
    tag = latest_tag(run_dir)
    path = checkpoint_dir(run_dir) / tag / TOPOLOGY_FILE if tag else None
    if path is None or not path.is_file():
        return
    saved = json.loads(path.read_text())
    if saved.get("world_size") != world_size:
        raise ConfigError(
            f"--train.resume: checkpoint {tag} of {run_dir} was saved by {saved.get('world_size')} "
            f"ranks and this launch has {world_size}; ZeRO partitions reload only at the same world "
            f"size. Relaunch with {saved.get('world_size')} ranks, or continue at this size in a new "
            f"run: --train.init-from {run_dir} --train.run-name <new> (weights and step carry over, "
            "the optimizer state restarts)"
        )


def check_resume_files(run_dir: Path) -> None:
    """Every file of the checkpoint to resume loads with weights_only=True (checked on each rank, before
    launch): DeepSpeed's engine.load_checkpoint then unpickles them with weights_only=False, so a file
    planted in the run directory would otherwise run its code."""
    from ds_parrots.parallel.checkpoint_format import check_checkpoint_files

    check_checkpoint_files(checkpoint_dir(run_dir) / require_resumable(run_dir))


def load(engine, run_dir: Path) -> dict:
    """Collective: restores model, optimizer, scheduler and returns the client state saved with it."""
    tag = require_resumable(run_dir)
    path, client_state = engine.load_checkpoint(str(checkpoint_dir(run_dir)), tag=tag)
    if path is None:
        raise ConfigError(f"DeepSpeed could not load checkpoint {checkpoint_dir(run_dir) / tag}")
    return client_state or {}


def write_config(run_dir: Path, config: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        Path(run_dir) / "config.json", json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
    )
