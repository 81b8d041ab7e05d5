"""Files shipped with the package (ds_configs/: DeepSpeed templates, mixtures)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_file(name: str) -> Path:
    """A file under ds_configs/: inside the installed package, or at the repository root when run from
    a checkout that was not installed."""
    try:
        packaged = resources.files("ds_parrots.ds_configs").joinpath(*name.split("/"))
        if packaged.is_file() or packaged.is_dir():
            return Path(str(packaged))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "ds_configs" / name
