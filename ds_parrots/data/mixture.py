"""Data mixtures: a small JSON file naming token files and their sampling weights.

    {"name": "math",
     "sources": [{"name": "proof_pile_2", "path": "data/proof_pile_2", "weight": 0.6},
                 {"name": "metamathqa", "path": "data/metamathqa", "weight": 0.4}]}

`path` is the prefix of a Megatron-format pair (`<path>.bin` / `<path>.idx`, see data/indexed.py),
relative to `data_root` (default: the current directory) unless absolute. Weights need not sum to 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ds_parrots.config import shipped_file
from ds_parrots.errors import ConfigError

# Mixtures shipped with the package (ds_configs/mixtures/<name>.json) can be named without a path.
SHIPPED = shipped_file("mixtures")


@dataclass(frozen=True)
class MixtureSource:
    name: str
    path: Path
    weight: float


@dataclass(frozen=True)
class Mixture:
    name: str
    sources: tuple[MixtureSource, ...]
    file: Path

    @property
    def weights(self) -> list[float]:
        total = sum(s.weight for s in self.sources)
        return [s.weight / total for s in self.sources]


def resolve_mixture_file(spec: str) -> Path:
    path = Path(spec)
    if path.is_file():
        return path
    shipped = SHIPPED / f"{spec}.json"
    if not path.suffix and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in SHIPPED.glob("*.json")) if SHIPPED.is_dir() else []
    raise ConfigError(
        f"--data.mixture: no mixture file {spec!r} (shipped mixtures: {', '.join(names) or 'none'}); "
        "give the path of a JSON file with a 'sources' list"
    )


def load_mixture(spec: str, data_root: Optional[str] = None) -> Mixture:
    """Read and check a mixture file; paths are resolved but the token files are opened elsewhere."""
    file = resolve_mixture_file(spec)
    try:
        raw = json.loads(file.read_text())
    except OSError as e:
        raise ConfigError(f"mixture {file}: cannot be read ({e.strerror})") from None
    # ValueError: bad JSON, bytes that are not UTF-8, an integer past Python's 4300 digits.
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"mixture {file}: not valid JSON ({e})") from None
    entries = raw.get("sources") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"mixture {file}: needs a non-empty 'sources' list of {{name, path, weight}}")
    root = Path(data_root) if data_root else Path.cwd()
    sources, seen = [], set()
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "path" not in e:
            raise ConfigError(f"mixture {file}: source {i} needs a 'path' (token file prefix)")
        name = str(e.get("name") or Path(e["path"]).name)
        weight = _weight(e.get("weight", 1.0))
        if weight is None:
            shown = repr(e["weight"])
            shown = shown if len(shown) <= 40 else f"{shown[:20]}...({len(shown)} characters)"
            raise ConfigError(
                f"mixture {file}: source {name!r} has weight {shown}; weights must be finite numbers > 0 "
                "(drop the source to leave it out)"
            )
        if name in seen:
            raise ConfigError(
                f"mixture {file}: source name {name!r} appears twice; give each source its own 'name'"
            )
        seen.add(name)
        path = Path(e["path"])
        for suffix in (".bin", ".idx"):
            if path.name.endswith(suffix):
                path = path.with_name(path.name[: -len(suffix)])
        sources.append(MixtureSource(name, path if path.is_absolute() else root / path, weight))
    return Mixture(str(raw.get("name") or file.stem), _normalizable(sources, file), file)


def _weight(value) -> Optional[float]:
    """A weight as a finite float > 0, else None. JSON reads Infinity, NaN and 1e999 as floats, and integers of
    any size (which float() overflows on)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _normalizable(sources: list[MixtureSource], file: Path) -> tuple[MixtureSource, ...]:
    """The sources with weights whose sum is finite: [1e308, 1e308] sums to infinity, and every share would
    become 0. Only then are they divided by the largest (weights that sum fine are kept bit for bit: the sample
    order depends on them). A weight too small next to the largest to be a share at all is refused."""
    top = max(sources, key=lambda s: s.weight)
    scaled = [s.weight / top.weight for s in sources]
    for s, w in zip(sources, scaled):
        if w / sum(scaled) == 0.0:
            raise ConfigError(
                f"mixture {file}: source {s.name!r} has weight {s.weight!r}, too small next to the largest "
                f"({top.name!r}: {top.weight!r}) to be any share of the samples; raise it or drop the source"
            )
    if not math.isfinite(sum(s.weight for s in sources)):
        sources = [MixtureSource(s.name, s.path, w) for s, w in zip(sources, scaled)]
    return tuple(sources)
