"""Writing a consolidated checkpoint: one fp32 safetensors file plus a JSON sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ds_parrots.checkpoints.load import FORMAT, sidecar_path
from ds_parrots.errors import ConfigError
from ds_parrots.fileio import fsync, replace, temporary_path


def save_consolidated(state: dict[str, torch.Tensor], meta: dict, out: Path, overwrite: bool = False) -> Path:
    """Write out (.safetensors) and its sidecar atomically: temporary files renamed at the end."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out}: the consolidated file must end in .safetensors")
    side = sidecar_path(out)
    if not overwrite and (out.exists() or side.exists()):
        raise ConfigError(f"{out if out.exists() else side} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, tmp_side = temporary_path(out), temporary_path(side)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": FORMAT})
        tmp_side.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        fsync(tmp)
        fsync(tmp_side)
        replace(tmp, out)  # the weights first: a sidecar never describes a missing file
        replace(tmp_side, side)
    finally:
        for t in (tmp, tmp_side):
            t.unlink(missing_ok=True)
    return out
