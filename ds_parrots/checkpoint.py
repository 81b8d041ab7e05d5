"""Save and resume training checkpoints (DeepSpeed's format, one tag per step).

Layout of a run directory:
    run_dir/config.json                the run's full configuration
    run_dir/checkpoints/latest         tag of the newest complete checkpoint (written by DeepSpeed last)
    run_dir/checkpoints/step00001000/  DeepSpeed model, optimizer and expert files of that step
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ds_parrots.config import ConfigError


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_tag(step: int) -> str:
    return f"step{step:08d}"


def latest_tag(run_dir: Path) -> Optional[str]:
    latest = checkpoint_dir(run_dir) / "latest"
    if not latest.is_file():
        return None
    tag = latest.read_text().strip()
    return tag if (checkpoint_dir(run_dir) / tag).is_dir() else None


def require_resumable(run_dir: Path) -> str:
    """The tag to resume from, or a ConfigError that says what is missing (checked before launch)."""
    tag = latest_tag(run_dir)
    if tag is None:
        raise ConfigError(f"--train.resume: no checkpoint in {checkpoint_dir(run_dir)} (no 'latest' tag there); "
                          "train without --train.resume first, or point --train.out-dir/--train.run-name at the "
                          "run to continue")
    return tag


# Fields a resumed run may change: how long it runs and how it logs, evaluates and saves. Everything
# else (task, model, MoE, optimizer, batch, seed, ZeRO stage, precision) shapes the trajectory, and a
# mismatch would silently continue a different experiment from the checkpoint.
RESUMABLE_CHANGES = {"train.steps", "train.resume", "train.save_every", "train.log_every", "train.eval_every",
                     "train.eval_batch", "train.max_eval", "train.num_workers", "train.progress",
                     "train.cache_dir", "train.micro_batch", "train.out_dir", "train.run_name", "train.init_from",
                     "train.activation_checkpointing", "train.peak_tflops",
                     # Where the data lives may move between jobs; what it is (mixture, seq_len) may not.
                     "data.data_root", "data.tokenizer"}


def flatten_config(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_config(v, key + "."))
        else:
            out[key] = v
    return out


def check_run_dir(run_dir: Path, config: dict, resume: bool) -> None:
    """Refuse, before launch, to overwrite a run's checkpoints or to resume it under another config."""
    tag = latest_tag(run_dir)
    if not resume:
        if tag is not None:
            raise ConfigError(f"{run_dir} already holds checkpoint {tag}: pass --train.resume to continue that run, "
                              "or a new --train.run-name / --train.out-dir to start another (nothing was "
                              "overwritten)")
        return
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        return
    saved = flatten_config(json.loads(saved_path.read_text()))
    new = flatten_config(json.loads(json.dumps(config, default=str)))
    diff = sorted(k for k in saved.keys() | new.keys()
                  if k not in RESUMABLE_CHANGES and saved.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
        more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
        raise ConfigError(f"--train.resume: {run_dir} was trained with a different configuration ({shown}{more}); "
                          "resume with the same flags, changing only steps, micro batch, logging, eval or saving")


def save(engine, run_dir: Path, step: int, client_state: dict, topology: Optional[dict] = None) -> str:
    """Collective: every rank calls it. Returns the tag written. `topology` (world size, expert-parallel
    size, ZeRO stage) is recorded beside DeepSpeed's files so that a resume can be checked before launch."""
    tag = step_tag(step)
    engine.save_checkpoint(str(checkpoint_dir(run_dir)), tag=tag, client_state=client_state)
    if topology is not None and engine.global_rank == 0:
        (checkpoint_dir(run_dir) / tag / TOPOLOGY_FILE).write_text(json.dumps(topology) + "\n")
    return tag


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
        raise ConfigError(f"--train.resume: checkpoint {tag} of {run_dir} was saved by {saved.get('world_size')} "
                          f"ranks and this launch has {world_size}; ZeRO partitions reload only at the same world "
                          f"size. Relaunch with {saved.get('world_size')} ranks, or continue at this size in a new "
                          f"run: --train.init-from {run_dir} --train.run-name <new> (weights and step carry over, "
                          "the optimizer state restarts)")


def load(engine, run_dir: Path) -> dict:
    """Collective: restores model, optimizer, scheduler and returns the client state saved with it."""
    tag = require_resumable(run_dir)
    path, client_state = engine.load_checkpoint(str(checkpoint_dir(run_dir)), tag=tag)
    if path is None:
        raise ConfigError(f"DeepSpeed could not load checkpoint {checkpoint_dir(run_dir) / tag}")
    return client_state or {}


def write_config(run_dir: Path, config: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(run_dir) / "config.json.tmp"
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(Path(run_dir) / "config.json")
