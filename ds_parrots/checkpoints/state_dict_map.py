"""The one map between our single-device state dict and the other layouts its weights take: Hugging Face
Mixtral, DeepSpeed's native MoE layer on one expert-parallel rank, and DeepSpeed AutoEP (its module and
its per-expert checkpoint files). Every renaming, split and fusion of MoE tensors is a row of MAP; the
functions below only walk it. Keys MAP does not name (attention, norms, embeddings, the dense
feed-forward) are the same in every layout.

Legend (templates; sizes: E experts, L = E / ep experts on one expert-parallel rank, F the per-expert FFN
size, d the model width):
    [layer]     block index
    [expert]    expert index: global in hf and autoep_expert_files, the rank-local j in native (DeepSpeed
                places global expert (rank % ep) * L + j on rank `rank`; its per-expert checkpoint files
                rename j to the global index, so reading them takes first_expert=0)
    ours        mlp.gate.weight [E, d]; mlp.experts.gate_up_proj [E, 2F, d] (gate rows, then up rows);
                mlp.experts.down_proj [E, d, F]
    hf          block_sparse_moe.gate.weight [E, d]; per expert w1 = gate [F, d], w3 = up [F, d],
                w2 = down [d, F] (the Hub's Mixtral files; transformers 5 also saves them so)
    native      moe.deepspeed_moe.gate.wg.weight [E, d]; per local expert gate_proj / up_proj [F, d],
                down_proj [d, F] (our SwiGLU inside deepspeed.moe.layer.MoE)
    autoep      router.gate.weight [E, d]; experts.w1 = gate [E|L, F, d], w3 = up [E|L, F, d],
                w2 = down [E|L, d, F] (deepspeed/moe/ep_experts.py GroupedExperts; a rank holds L)
    autoep_expert_files   AutoEP's layer_<l>_expert_<e>_* files: experts.w1.<e> [F, d], w3.<e>, w2.<e>

A piece's `part` cuts ours' per-expert rows into equal halves: "gate" the first F rows, "up" the last F.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError


@dataclass(frozen=True)
class Piece:
    """One tensor of a layout: its key template and which rows of ours it holds."""

    key: str
    part: str = "all"  # "all", or the "gate" / "up" half of each expert's rows

    @property
    def per_expert(self) -> bool:
        return "[expert]" in self.key


@dataclass(frozen=True)
class Entry:
    """One tensor of ours and its pieces in each layout. experts: dim 0 is the expert dim, split over
    expert-parallel ranks (a router's [E, d] is not: every rank holds all of it)."""

    ours: str
    experts: bool
    layouts: dict[str, tuple[Piece, ...]]

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.part for p in next(iter(self.layouts.values()))))


_L = "model.layers.[layer]"
_NATIVE_EXPERT = f"{_L}.mlp.moe.deepspeed_moe.experts.deepspeed_experts.[expert]"
_HF_EXPERT = f"{_L}.block_sparse_moe.experts.[expert]"

MAP: tuple[Entry, ...] = (
    Entry(
        f"{_L}.mlp.gate.weight",
        experts=False,
        layouts={
            "hf": (Piece(f"{_L}.block_sparse_moe.gate.weight"),),
            "native": (Piece(f"{_L}.mlp.moe.deepspeed_moe.gate.wg.weight"),),
            "autoep": (Piece(f"{_L}.mlp.router.gate.weight"),),
            "autoep_expert_files": (Piece(f"{_L}.mlp.router.gate.weight"),),
        },
    ),
    Entry(
        f"{_L}.mlp.experts.gate_up_proj",
        experts=True,
        layouts={
            "hf": (Piece(f"{_HF_EXPERT}.w1.weight", "gate"), Piece(f"{_HF_EXPERT}.w3.weight", "up")),
            "native": (
                Piece(f"{_NATIVE_EXPERT}.gate_proj.weight", "gate"),
                Piece(f"{_NATIVE_EXPERT}.up_proj.weight", "up"),
            ),
            "autoep": (Piece(f"{_L}.mlp.experts.w1", "gate"), Piece(f"{_L}.mlp.experts.w3", "up")),
            "autoep_expert_files": (
                Piece(f"{_L}.mlp.experts.w1.[expert]", "gate"),
                Piece(f"{_L}.mlp.experts.w3.[expert]", "up"),
            ),
        },
    ),
    Entry(
        f"{_L}.mlp.experts.down_proj",
        experts=True,
        layouts={
            "hf": (Piece(f"{_HF_EXPERT}.w2.weight"),),
            "native": (Piece(f"{_NATIVE_EXPERT}.down_proj.weight"),),
            "autoep": (Piece(f"{_L}.mlp.experts.w2"),),
            "autoep_expert_files": (Piece(f"{_L}.mlp.experts.w2.[expert]"),),
        },
    ),
)

# Second names of a tensor that a layout's state dict repeats: AutoEP's layer registers its router under
# mlp.gate as well (DeepSpeed's module state dict then holds router.gate.weight twice).
ALIASES: dict[str, tuple[str, ...]] = {"autoep": (f"{_L}.mlp.gate.gate.weight",)}

DEEPSPEED_LAYOUTS = ("native", "autoep", "autoep_expert_files")


def _regex(template: str) -> re.Pattern:
    pattern = (
        re.escape(template)
        .replace(r"\[layer\]", r"(?P<layer>\d+)")
        .replace(r"\[expert\]", r"(?P<expert>\d+)")
    )
    return re.compile(f"^{pattern}$")


def _key(template: str, layer: str, expert: int | None = None) -> str:
    return template.replace("[layer]", layer).replace("[expert]", str(expert))


_OURS = [(_regex(e.ours), e) for e in MAP]
_PIECES = {
    layout: [(_regex(p.key), e, p) for e in MAP for p in e.layouts[layout]]
    for layout in DEEPSPEED_LAYOUTS + ("hf",)
}
_ALIASES = {layout: [_regex(t) for t in ts] for layout, ts in ALIASES.items()}


def _match_ours(name: str):
    for regex, entry in _OURS:
        if m := regex.match(name):
            return entry, m.group("layer")
    return None


def _export(
    state: Mapping[str, torch.Tensor], layout: str, experts: range, index_base: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """(layout key, tensor) for each of ours, in order; expert tensors keep `experts` only, numbered from
    index_base (a rank-local j = global - index_base)."""
    for name, t in state.items():
        found = _match_ours(name)
        if found is None:
            yield name, t
            continue
        entry, layer = found
        pieces = entry.layouts[layout]
        if not entry.experts:
            yield _key(pieces[0].key, layer), t
        elif all(p.per_expert for p in pieces):  # expert outer: HF shards keep each expert's pieces together
            for e in experts:
                for p in pieces:
                    yield _key(p.key, layer, e - index_base), _part(t[e], p.part, entry, 0)
        else:
            for p in pieces:
                yield _key(p.key, layer), _part(t[experts.start : experts.stop], p.part, entry, 1)


def _part(t: torch.Tensor, part: str, entry: Entry, dim: int) -> torch.Tensor:
    if part == "all":
        return t
    return t.chunk(len(entry.parts), dim=dim)[entry.parts.index(part)]


class Collector:
    """Assembles tensors named in any of `layouts` into ours: expert pieces land at their global index in
    [E, ...] tensors, every expert of each must arrive. `source` names the input in errors; `dtype`, when
    given, converts each tensor as it arrives (the checkpoint readers want fp32)."""

    def __init__(
        self,
        cfg: ModelConfig,
        layouts: Sequence[str],
        source: str = "the state dict",
        dtype: torch.dtype | None = None,
    ):
        self.cfg, self.source, self.dtype = cfg, source, dtype
        self.pieces = [x for layout in layouts for x in _PIECES[layout]]
        self.aliases = [r for layout in layouts for r in _ALIASES.get(layout, ())]
        self.out: dict[str, torch.Tensor] = {}
        self.experts: dict[str, tuple[Entry, torch.Tensor]] = {}
        self.filled: dict[tuple[str, str], set[int]] = {}

    def add(self, name: str, value: torch.Tensor, first_expert: int = 0) -> None:
        """One tensor. A per-expert key's index counts from first_expert; a stacked expert tensor holds
        experts first_expert, first_expert + 1, ... (one rank's)."""
        value = value.detach() if self.dtype is None else value.detach().to(self.dtype)
        if any(a.match(name) for a in self.aliases):
            return
        found = next(
            ((m, entry, piece) for regex, entry, piece in self.pieces if (m := regex.match(name))), None
        )
        if found is None:
            self.out[name] = value
            return
        m, entry, piece = found
        ours = _key(entry.ours, m.group("layer"))
        if not entry.experts:
            self.out[ours] = value
        elif piece.per_expert:
            self._place(ours, entry, piece.part, value.unsqueeze(0), first_expert + int(m.group("expert")))
        else:
            self._place(ours, entry, piece.part, value, first_expert)

    def _place(self, ours: str, entry: Entry, part: str, value: torch.Tensor, start: int) -> None:
        e = self.cfg.num_experts
        if start + value.shape[0] > e:
            raise ConfigError(
                f"{self.source} holds expert {start + value.shape[0] - 1} of {ours}, but the model has "
                f"{e} experts"
            )
        rows = value.shape[1]
        if ours not in self.experts:
            shape = (e, rows * len(entry.parts), *value.shape[2:])
            self.experts[ours] = (entry, torch.empty(shape, dtype=value.dtype))
        i = entry.parts.index(part) if part != "all" else 0
        target = self.experts[ours][1][start : start + value.shape[0], i * rows : (i + 1) * rows]
        if target.shape != value.shape:
            raise ConfigError(
                f"{self.source}: a piece of {ours} has shape {tuple(value.shape[1:])}, unlike its "
                f"other pieces (per expert {tuple(target.shape[1:])})"
            )
        target.copy_(value)
        self.filled.setdefault((ours, part), set()).update(range(start, start + value.shape[0]))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Ours, complete: a ConfigError names the first expert tensor missing experts."""
        out = dict(self.out)
        e = self.cfg.num_experts
        for ours, (entry, value) in sorted(self.experts.items()):
            for part in entry.parts:
                missing = sorted(set(range(e)) - self.filled.get((ours, part), set()))
                if missing:
                    what = f"{ours} ({part})" if part != "all" else ours
                    raise ConfigError(
                        f"{self.source} lacks experts {missing[:8]} of {what}: incomplete checkpoint"
                    )
            out[ours] = value
        if self.cfg.tie_embeddings and "lm_head.weight" not in out and "model.embed_tokens.weight" in out:
            # A tied head is saved once (HF drops it, DeepSpeed stores the shared tensor once); a copy, not
            # an alias, since safetensors refuses tensors sharing memory.
            out["lm_head.weight"] = out["model.embed_tokens.weight"].clone()
        return out


def _collect(
    items: Iterable[tuple[str, torch.Tensor]], cfg: ModelConfig, layouts: Sequence[str], **kwargs
) -> dict[str, torch.Tensor]:
    c = Collector(cfg, layouts, **kwargs)
    for name, value in items:
        c.add(name, value)
    return c.state_dict()


def _items(state) -> Iterable[tuple[str, torch.Tensor]]:
    return state.items() if isinstance(state, Mapping) else state


def to_hf(state: Mapping[str, torch.Tensor], cfg: ModelConfig) -> Iterator[tuple[str, torch.Tensor]]:
    """(Hugging Face Mistral / Mixtral name, tensor) for each of ours, in order; a tied lm_head is left out
    (transformers ties it on load)."""
    items = ((k, v) for k, v in state.items() if not (cfg.tie_embeddings and k == "lm_head.weight"))
    return _export(dict(items), "hf", range(cfg.num_experts))


def from_hf(
    state, cfg: ModelConfig, source: str = "the Hugging Face weights", dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Ours from Hugging Face tensors (a mapping or (name, tensor) pairs): the Hub's per-expert w1/w3/w2,
    or transformers 5's fused experts.gate_up_proj / down_proj, which are ours already."""
    return _collect(_items(state), cfg, ("hf",), source=source, dtype=dtype)


def _local(cfg: ModelConfig, ep_size: int) -> int:
    if cfg.num_experts % ep_size:
        raise ConfigError(f"{cfg.num_experts} experts do not split over expert-parallel size {ep_size}")
    return cfg.num_experts // ep_size


def to_native(
    state: Mapping[str, torch.Tensor], cfg: ModelConfig, ep_size: int, rank: int
) -> dict[str, torch.Tensor]:
    """Ours renamed for DeepSpeed's native MoE layer on global rank `rank`: the router whole, and only that
    rank's L = E / ep_size experts, global (rank % ep_size) * L + j as deepspeed_experts.<j>. Tensors are
    views of ours."""
    if not cfg.is_moe:
        return dict(state)
    local = _local(cfg, ep_size)
    first = (rank % ep_size) * local
    return dict(_export(state, "native", range(first, first + local), index_base=first))


def from_native(
    rank_states: Sequence[Mapping[str, torch.Tensor]], cfg: ModelConfig, ep_size: int
) -> dict[str, torch.Tensor]:
    """Ours from the native layer's state dicts of ranks 0, 1, ... (at least ep_size of them: rank r holds
    experts from (r % ep_size) * L; ranks beyond ep_size repeat them)."""
    local = _local(cfg, ep_size)
    c = Collector(cfg, ("native",))
    for rank, state in enumerate(rank_states):
        for name, value in state.items():
            c.add(name, value, (rank % ep_size) * local)
    return c.state_dict()


def to_autoep(state: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Ours in DeepSpeed AutoEP's names with all E experts (its module on one rank slices them itself)."""
    return dict(_export(state, "autoep", range(cfg.num_experts)))


def from_autoep(
    state: Mapping[str, torch.Tensor], cfg: ModelConfig, first_expert: int = 0
) -> dict[str, torch.Tensor]:
    """Ours from AutoEP names (its module, or per-expert file keys); stacked experts start at first_expert."""
    c = Collector(cfg, ("autoep", "autoep_expert_files"))
    for name, value in state.items():
        c.add(name, value, first_expert)
    return c.state_dict()


def is_expert_key(name: str) -> bool:
    """Whether `name` is an expert tensor of a DeepSpeed layout (partitioned over expert-data-parallel ranks)."""
    return any(e.experts and r.match(name) for layout in DEEPSPEED_LAYOUTS for r, e, _ in _PIECES[layout])


def local_expert_count(shapes: Mapping[str, Sequence[int]]) -> int:
    """Experts per rank, from the DeepSpeed expert tensors one rank saw: the distinct per-expert indices
    (native), or dim 0 of a stacked tensor (AutoEP)."""
    indices, stacked = set(), None
    for name, shape in shapes.items():
        for regex, entry, piece in (x for layout in DEEPSPEED_LAYOUTS for x in _PIECES[layout]):
            if entry.experts and (m := regex.match(name)):
                if piece.per_expert:
                    indices.add(m.group("expert"))
                elif stacked is None:
                    stacked = int(shape[0])
                break
    if indices:
        return len(indices)
    if stacked is not None:
        return stacked
    raise ConfigError("expert parameter group without expert parameters")
