"""What a planned sweep becomes: the manifest and DeepSpeed configs, SLURM job scripts, or runs trained here."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from ds_parrots.errors import ConfigError, RunPreempted
from ds_parrots.sweep.grids import GRIDS
from ds_parrots.sweep.plan import TRAIN_PY, PlannedRun

SLURM_LAUNCHER = TRAIN_PY.parent.parent / "launch" / "slurm.sbatch"


def write_plan(out: Path, grid: str, gpus: int, runs: list[PlannedRun], description: str = "") -> None:
    """manifest.json and configs/<run>.json; `description` defaults to the named sweep grid's."""
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for r in runs:
        (out / "configs" / f"{r.name}.json").write_text(json.dumps(r.ds_config, indent=2) + "\n")
    manifest = {
        "grid": grid,
        "description": description or GRIDS[grid].description,
        "gpus_per_run": gpus,
        "runs": [r.manifest_entry() for r in runs],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# The job hands the run to launch/slurm.sbatch (topology check, one deepspeed launcher per node); this
# wrapper only adds the sweep's part: the allocation of one run, and skip-if-done / resume-if-started.
SBATCH = """#!/bin/bash
# {name}: written by `{command}`; one node, {gpus} GPU(s).
# Resubmitting is safe: a finished run exits at once, an interrupted one resumes from its checkpoint.
#SBATCH --job-name={name}
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --output={logs}/%x-%j.out
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
{extra}set -euo pipefail
cd {cwd}
run_dir={run_dir}
if [ -f "$run_dir/results.json" ]; then echo "$run_dir/results.json exists: nothing to do"; exit 0; fi
resume=""
if [ -f "$run_dir/checkpoints/latest" ]; then resume="--train.resume"; fi
exec bash {launcher} {args} $resume
"""


def emit_slurm(
    out: Path,
    grid: str,
    gpus: int,
    sbatch_options: tuple[str, ...],
    runs: list[PlannedRun],
    command: str = "",
) -> None:
    """One job script per run and submit_all.sh; `command`: what wrote them, for the scripts' header."""
    command = command or f"ds-parrots sweep {grid} --emit slurm"
    if not SLURM_LAUNCHER.is_file():
        raise ConfigError(
            f"--emit slurm: the jobs call {SLURM_LAUNCHER}, which is missing (an installed copy of the "
            "package has no launch/ folder); run the sweep from a checkout of the repository"
        )
    slurm = (out / "slurm").resolve()
    (slurm / "logs").mkdir(parents=True, exist_ok=True)  # SLURM does not create the --output directory
    extra = "".join(f"#SBATCH --{o.lstrip('-')}\n" for o in sbatch_options)
    for r in runs:
        (slurm / f"{r.name}.sbatch").write_text(
            SBATCH.format(
                name=r.name,
                command=command,
                gpus=gpus,
                logs=slurm / "logs",
                extra=extra,
                cwd=shlex.quote(str(Path.cwd())),
                run_dir=shlex.quote(str(r.run_dir)),
                launcher=shlex.quote(str(SLURM_LAUNCHER)),
                args=shlex.join(r.args),
            )
        )
    submit = slurm / "submit_all.sh"
    submit.write_text(
        "#!/bin/bash\nset -e\n"
        + "".join(f"sbatch {shlex.quote(str(slurm / r.name) + '.sbatch')}\n" for r in runs)
    )
    submit.chmod(0o755)
    print(f"wrote {len(runs)} job scripts to {slurm}; submit them with: bash {submit}")


# What a scheduler sends before it stops a job: handed on to the run, whose ranks save a checkpoint and exit 75.
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def ranks(pid: int) -> list[int]:
    """The training processes at or below `pid`: train.py itself, or the ranks under the deepspeed launcher
    (whose runner would die of the signal and orphan them; launch/common.sh forwards the same way)."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    found = []
    for p in procs:
        try:
            cmdline = p.cmdline()
        except psutil.Error:
            continue
        if any(a.endswith("train.py") for a in cmdline) and "deepspeed.launcher" not in " ".join(cmdline):
            found.append(p.pid)
    return found


def run_forwarding(cmd: list[str], log, env: dict) -> tuple[int, str]:
    """Run `cmd` with its output to `log`, handing SIGTERM / SIGUSR1 to it (the deepspeed launcher hands them to
    the ranks); (its exit code, the name of the signal this process received or "")."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    received = []

    def forward(signum, frame):
        received.append(signal.Signals(signum).name)
        for pid in ranks(proc.pid):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in PREEMPT_SIGNALS}
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return rc, received[0] if received else ""


def execute(out: Path, gpus: int, runs: list[PlannedRun]) -> int:
    """Train the runs one after another here; 0 if all succeeded (or were already done), else 1."""
    from ds_parrots.training.checkpoint import latest_tag

    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # The same python as this sweep; the deepspeed launcher as a module, so no PATH lookup is involved.
    launcher = (
        [sys.executable, str(TRAIN_PY)]
        if gpus == 1
        else [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(gpus), str(TRAIN_PY)]
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if (
        gpus > 1 and "OMP_NUM_THREADS" not in env
    ):  # the launcher leaves it unset: CPU ranks would oversubscribe
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // gpus))
    done, skipped, failed = 0, 0, []
    for i, r in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {r.name}"
        if (r.run_dir / "results.json").is_file():
            print(f"{head}: skipped, {r.run_dir / 'results.json'} exists", flush=True)
            skipped += 1
            continue
        resume = ["--train.resume"] if latest_tag(r.run_dir) else []
        log = logs / f"{r.name}.log"
        print(f"{head}: {'resuming' if resume else 'training'}, log {log}", flush=True)
        start = time.monotonic()
        with open(log, "a" if resume else "w") as f:
            rc, received = run_forwarding(launcher + r.args + resume, f, env)
        seconds = time.monotonic() - start
        if rc == RunPreempted.exit_code or received:
            # Preempted (the run saved a checkpoint and exited 75), or this sweep was told to stop: the rest of
            # the sweep waits for the next invocation, which resumes this run.
            tag = latest_tag(r.run_dir)
            raise RunPreempted(
                f"{head}: preempted{f' by {received}' if received else ''} (exit code {rc}), checkpoint "
                f"{tag or 'none'} in {r.run_dir}; run the same command again to resume it and go on with the "
                f"rest ({done} trained, {skipped} skipped so far)"
            )
        if rc == 0 and (r.run_dir / "results.json").is_file():
            print(f"{head}: done in {seconds:.0f} s, {r.run_dir / 'results.json'}", flush=True)
            done += 1
            continue
        failed.append(r.name)
        tail = "".join(f"    {line}\n" for line in log.read_text(errors="replace").splitlines()[-15:])
        print(
            f"{head}: FAILED (exit code {rc}) after {seconds:.0f} s; the end of {log}:\n{tail}",
            end="",
            flush=True,
        )
    print(
        f"sweep: {done} trained, {skipped} skipped (done before), {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0
