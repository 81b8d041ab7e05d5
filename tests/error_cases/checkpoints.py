"""Bad-input cases of checkpoints: damaged or mismatched run directories, consolidated files and Hugging Face
folders, and untrusted checkpoints carrying a pickled payload."""

import fcntl
import json
import os

from error_cases.catalogue import (
    PHONEBOOK,
    PIQA,
    C,
    _edit_config,
    _hf_folder,
    _truncate,
    write_bench,
    write_consolidated,
    write_run,
)


def _mark_verified(run_dir, flip: str = "", remove: str = ""):
    """Record the checkpoint's files with sizes and checksums, as save() does; then flip a byte of one file,
    or delete one."""
    from ds_parrots.training.checkpoint_manifest import COMPLETE_FILE, marker

    tag = run_dir / "checkpoints" / "step00000002"
    (tag / COMPLETE_FILE).write_text(json.dumps(marker(2, tag, [{}])))
    if flip:
        data = bytearray((tag / flip).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tag / flip).write_bytes(bytes(data))
    if remove:
        (tag / remove).unlink()


_LOCKS: list = []


def _hold_run_dir(run_dir):
    """Another live run's rank 0: an exclusive flock on the run directory's lock file, held by this process
    through an open file of its own (flocks of two open files conflict even within one process)."""
    run_dir.mkdir(parents=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"host": "node7", "pid": 4242, "started": "2025-01-01 09:00:00 UTC"}).encode())
    _LOCKS.append(fd)


def _release_run_dirs(tmp):
    while _LOCKS:
        os.close(_LOCKS.pop())


def _hf_with_bench(tmp, **config):
    """A Hugging Face folder and a valid piqa file: the benchmark files are checked before the weights load,
    so the folder's defect is what the command meets."""
    _hf_folder(tmp, **config)
    write_bench(tmp, [PIQA])


CASES = [
    # --- checkpoints ---------------------------------------------------------------------------------
    C(
        "ckpt-missing-dir",
        "checkpoint",
        ["consolidate", "{tmp}/nope", "--out", "{tmp}/m.safetensors"],
        ["{tmp}/nope", "no such checkpoint"],
    ),
    C(
        "ckpt-no-latest",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["{tmp}/run", "checkpoints/latest"],
        lambda t, a: (write_run(t / "run"), (t / "run" / "checkpoints" / "latest").unlink()),
    ),
    C(
        "ckpt-latest-names-missing-step",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["{tmp}/run/checkpoints/latest", "step00000099"],
        lambda t, a: (
            write_run(t / "run"),
            (t / "run" / "checkpoints" / "latest").write_text("step00000099"),
        ),
    ),
    C(
        "ckpt-no-config",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["{tmp}/run/config.json", "is missing"],
        lambda t, a: (write_run(t / "run"), (t / "run" / "config.json").unlink()),
    ),
    C(
        "ckpt-truncated-model-states",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["mp_rank_00_model_states.pt", "cannot read checkpoint file"],
        lambda t, a: (write_run(t / "run"), _truncate(next((t / "run").rglob("*.pt")), 100)),
    ),
    C(
        "ckpt-another-architecture",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["{tmp}/run", "does not match the model configuration"],
        lambda t, a: (write_run(t / "run"), _edit_config(t / "run", d_model=128)),
    ),
    C(
        "ckpt-consolidate-out-exists",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["{tmp}/m.safetensors", "--overwrite"],
        lambda t, a: (write_run(t / "run"), (t / "m.safetensors").write_text("keep")),
    ),
    C(
        "ckpt-consolidate-out-not-safetensors",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.pt"],
        ["--out {tmp}/m.pt", ".safetensors"],
        lambda t, a: write_run(t / "run"),
    ),
    C(
        "ckpt-truncated-safetensors",
        "checkpoint",
        ["export-hf", "{tmp}/m.safetensors", "--out", "{tmp}/hf"],
        ["{tmp}/m.safetensors", "not a readable safetensors file"],
        lambda t, a: (write_consolidated(t / "m.safetensors", 64, None), _truncate(t / "m.safetensors", 200)),
    ),
    C(
        "ckpt-safetensors-without-sidecar",
        "checkpoint",
        ["export-hf", "{tmp}/m.safetensors", "--out", "{tmp}/hf"],
        ["{tmp}/m.json", "sidecar"],
        lambda t, a: (write_consolidated(t / "m.safetensors", 64, None), (t / "m.json").unlink()),
    ),
    C(
        "ckpt-export-out-not-empty",
        "checkpoint",
        ["export-hf", "{tmp}/m.safetensors", "--out", "{tmp}/hf"],
        ["{tmp}/hf", "--overwrite"],
        lambda t, a: (
            write_consolidated(t / "m.safetensors", 64, None),
            (t / "hf").mkdir(),
            (t / "hf" / "keep.txt").write_text("keep"),
        ),
    ),
    C(
        "ckpt-hf-folder-other-model-type",
        "checkpoint",
        ["{tmp}/hf", "--tasks", "piqa", "--bench-dir", "{tmp}"],
        ["{tmp}/hf/config.json", "model_type 'llama'"],
        lambda t, a: _hf_folder(t, model_type="llama"),
        command="ds-parrots-eval",
    ),
    C(
        "ckpt-hf-folder-truncated-weights",
        "checkpoint",
        ["{tmp}/hf", "--tasks", "piqa", "--bench-dir", "{tmp}/bench"],
        ["{tmp}/hf/model.safetensors", "not a readable safetensors file"],
        lambda t, a: (_hf_with_bench(t), _truncate(t / "hf" / "model.safetensors", 100)),
        command="ds-parrots-eval",
    ),
    C(
        "ckpt-resume-without-checkpoint",
        "checkpoint",
        [*PHONEBOOK, "--train.resume"],
        ["--train.resume", "no checkpoint in", "train without --train.resume first"],
    ),
    C(
        "ckpt-resume-at-another-world-size",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r", "--train.resume"],
        ["--train.resume", "saved by 2 ranks", "--train.init-from"],
        lambda t, a: (
            write_run(t / "runs" / "r"),
            (t / "runs" / "r" / "checkpoints" / "step00000002" / "ds_parrots_topology.json").write_text(
                '{"world_size": 2}'
            ),
        ),
    ),
    C(
        "ckpt-resume-under-another-config",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r", "--train.resume", "--optim.lr", "0.5"],
        ["--train.resume", "optim.lr: 0.001 -> 0.5", "resume with the same flags"],
        lambda t, a: write_run(t / "runs" / "r"),
    ),
    C(
        "ckpt-run-dir-holds-checkpoints",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r"],
        ["already holds checkpoint step00000002", "--train.resume"],
        lambda t, a: write_run(t / "runs" / "r"),
    ),
    C(
        "ckpt-init-from-another-model",
        "checkpoint",
        [*PHONEBOOK, "--train.init-from", "{tmp}/src", "--train.steps", "10", "--model.d-model", "128"],
        ["--train.init-from {tmp}/src", "another model", "pass the model flags"],
        lambda t, a: write_run(t / "src"),
    ),
    C(
        "ckpt-init-from-past-steps",
        "checkpoint",
        [*PHONEBOOK, "--train.init-from", "{tmp}/src", "--train.steps", "2"],
        ["--train.init-from {tmp}/src", "raise --train.steps"],
        lambda t, a: write_run(t / "src"),
    ),
    C(
        "ckpt-checksum-mismatch",
        "checkpoint",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        [
            "{tmp}/run/checkpoints/step00000002 failed verification",
            "mp_rank_00_model_states.pt checksum mismatch",
        ],
        lambda t, a: (write_run(t / "run"), _mark_verified(t / "run", flip="mp_rank_00_model_states.pt")),
    ),
    C(
        "ckpt-resume-rank-file-missing",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r", "--train.resume"],
        ["--train.resume", "step00000002: mp_rank_00_model_states.pt is missing", "restore the files"],
        lambda t, a: (
            write_run(t / "runs" / "r"),
            _mark_verified(t / "runs" / "r", remove="mp_rank_00_model_states.pt"),
        ),
    ),
    C(
        "run-dir-in-use",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r"],
        ["{tmp}/runs/r is in use by pid 4242 on host node7", "pick another --train.run-name"],
        lambda t, a: _hold_run_dir(t / "runs" / "r"),
        cleanup=_release_run_dirs,
    ),
    # --- untrusted checkpoints: a pickled payload is refused, never run ------------------------------
    C(
        "pickle-consolidate",
        "security",
        ["consolidate", "{tmp}/run", "--out", "{tmp}/m.safetensors"],
        ["mp_rank_00_model_states.pt", "weights_only=True"],
        lambda t, a: write_run(t / "run", payload=True),
    ),
    C(
        "pickle-export-hf",
        "security",
        ["export-hf", "{tmp}/run", "--out", "{tmp}/hf"],
        ["mp_rank_00_model_states.pt", "weights_only=True"],
        lambda t, a: write_run(t / "run", payload=True),
    ),
    C(
        "pickle-eval",
        "security",
        ["{tmp}/run"],
        ["mp_rank_00_model_states.pt", "weights_only=True"],
        lambda t, a: write_run(t / "run", payload=True),
        command="ds-parrots-eval",
    ),
    C(
        "pickle-init-from",
        "security",
        [*PHONEBOOK, "--train.init-from", "{tmp}/run", "--train.steps", "10"],
        ["mp_rank_00_model_states.pt", "weights_only=True"],
        lambda t, a: write_run(t / "run", payload=True),
    ),
    C(
        "pickle-resume",
        "security",
        [*PHONEBOOK, "--train.run-name", "r", "--train.resume"],
        ["mp_rank_00_model_states.pt", "weights_only=True"],
        lambda t, a: write_run(t / "runs" / "r", payload=True),
    ),
]
