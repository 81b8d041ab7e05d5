"""What a planned sweep becomes: the manifest and DeepSpeed configs, SLURM job scripts, or runs trained here."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ds_parrots.errors import ConfigError
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
        with open(log, "w") as f:
            rc = subprocess.run(
                launcher + r.args + resume, stdout=f, stderr=subprocess.STDOUT, env=env
            ).returncode
        seconds = time.monotonic() - start
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
