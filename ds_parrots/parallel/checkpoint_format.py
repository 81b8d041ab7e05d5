"""Read any of our DeepSpeed checkpoints into one full-precision state dict, without DeepSpeed or a process
group, whatever world size, ZeRO stage, MoE backend and expert-parallel size wrote it.

DeepSpeed's own `zero_to_fp32` skips MoE experts (and refuses AutoEP's ZeRO-3 layout), so the rules are ours:
- fp32 master weights come from the optimizer partitions (ZeRO 1-3, bf16 included); without ZeRO and in fp32,
  the module weights saved by rank 0 and the per-expert files are the weights.
- ZeRO-3 partitions each parameter separately over its partition group (rank r holds ceil(n/p) elements,
  the last one padded); ZeRO-1/2 partition each parameter group's flat concatenation.
- Expert parameters are partitioned over the expert-data-parallel group (ranks e, e+ep, e+2ep, ... for
  expert-parallel rank e = rank % ep, DeepSpeed's layout) and hold that rank's num_experts/ep experts,
  global experts [e * local, (e + 1) * local).
- Names are turned into the single-device model's (Mixtral layout) by ds_parrots.checkpoints.state_dict_map.
- AdamW's exp_avg / exp_avg_sq lie in the same partitions element for element (read_adam_state, for
  --train.init-from's optimizer restore, parallel/optimizer_state.py); without ZeRO they are not read.
- All of this is DeepSpeed-internal: the reader refuses a checkpoint written by a DeepSpeed version it was
  not tested with (TESTED_DEEPSPEED, below, with the facts it relies on).

Files are read with torch.load(weights_only=True): tensors and a short allowlist of DeepSpeed's plain
classes, never arbitrary code.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import torch

from ds_parrots.checkpoints.state_dict_map import (
    DEEPSPEED_LAYOUTS,
    Collector,
    is_expert_key,
    local_expert_count,
)
from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError

# Plain-data classes DeepSpeed pickles into its checkpoints (an enum, the loss-scaler record and a
# (start, numel) pair); allowing them keeps weights_only=True, which refuses anything else.
_ALLOWED = (
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.utils.tensor_fragment.fragment_address",
)


_EXPERT_FILE = re.compile(r"^layer_(\d+)_expert_(\d+)_mp_rank_00_model_states\.pt$")


_OPTIM_FILE = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_00_optim_states\.pt$")


_ZERO3_MODEL_FILE = re.compile(r"^zero_pp_rank_(\d+)_mp_rank_00_model_states\.pt$")


# DeepSpeed versions whose checkpoint files this reader was checked against (tests/fixtures/pre_refactor_runs
# were written by 0.19.8). What it relies on, all DeepSpeed-internal and free to change in any release:
# - *model_states.pt: "module", "param_shapes" (one ordered name -> shape dict per parameter group, in the
#   order of the flat fp32 groups), "dp_world_size", "ds_version"; AutoEP adds "ds_autoep_layers" with
#   "expert_key_prefix" and "global_expert_start" per layer.
# - ZeRO-1/2 optim_states: optimizer_state_dict.single_partition_of_fp32_groups (equal contiguous slices of
#   each group's flat vector) and param_alignment_paddings; ZeRO-3: fp32_flat_groups holding ceil(n/p)
#   elements of every parameter, with ds_zero_partition_groups (partition_ranks, families) under AutoEP.
# - AdamW's state: ZeRO-1/2 optimizer_state_dict.base_optimizer_state.state[g], ZeRO-3
#   optimizer_state_dict.optimizer_state_dict.state[sub], one flat tensor per group (padding kept).
# - layer_<l>_expert_<e>_mp_rank_00_model_states.pt: one expert under its global index.
# - the expert-data-parallel group of rank r is r % ep, r % ep + ep, ... (E + D layout).
# Exact versions, not major.minor: DeepSpeed ships features and checkpoint changes in patch releases, and a
# source build reports the coming release plus a git hash.
TESTED_DEEPSPEED = ("0.19.8",)
ALLOW_VERSION_ENV = "DS_PARROTS_ALLOW_DEEPSPEED_VERSION"


def check_deepspeed_version(path: Path, found) -> None:
    """Refuse a file written by a DeepSpeed version outside TESTED_DEEPSPEED (ConfigError), unless
    DS_PARROTS_ALLOW_DEEPSPEED_VERSION=1, which reads it with a warning. `found` None passes: DeepSpeed's
    engine writes ds_version into every model-states file it saves, so a file without one was built by
    hand (the ZeRO-0 module files of our error-case tests) and has no version to be held to."""
    if found is None or found in TESTED_DEEPSPEED:
        return
    what = (
        f"checkpoint file {path} was written by DeepSpeed {found}; ds_parrots reads DeepSpeed checkpoint "
        f"files only of the versions it was tested with ({', '.join(TESTED_DEEPSPEED)}), as their layout is "
        "DeepSpeed-internal"
    )
    if os.environ.get(ALLOW_VERSION_ENV, "") not in ("", "0"):
        warnings.warn(
            f"{what}; reading it anyway ({ALLOW_VERSION_ENV} is set): check the result", stacklevel=2
        )
        return
    raise ConfigError(
        f"{what}. Install deepspeed=={TESTED_DEEPSPEED[-1]} and consolidate with it, or set "
        f"{ALLOW_VERSION_ENV}=1 to read it at your own risk (a changed layout can give wrong weights)"
    )


def _model_states(path: Path) -> dict:
    """A *model_states.pt file, refused unless a tested DeepSpeed version wrote it."""
    states = safe_load(path)
    check_deepspeed_version(path, states.get("ds_version"))
    return states


def _allowed_globals() -> list:
    import importlib

    out = []
    for qualname in _ALLOWED:
        module, name = qualname.rsplit(".", 1)
        try:
            out.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass  # a checkpoint that needs it then fails with a clear error below
    return out


def safe_load(path: Path, mmap: bool = False) -> dict:
    """torch.load(weights_only=True) with DeepSpeed's plain-data classes allowed; errors name the file.
    mmap=True maps the tensor data instead of reading it (zip-format files), for a cheap check."""
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as e:
                if not (mmap and "mmap" in str(e)):
                    raise
                # A legacy (non-zip) torch.save file cannot be mapped; the restricted unpickler still applies.
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own text advises weights_only=False, exactly what must not be done with a file like this.
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL (\S+)", str(e))
        raise ConfigError(
            f"cannot read checkpoint file {path}: it holds "
            f"{'the object ' + found.group(1) if found else 'objects other than tensors'}, which no "
            "checkpoint of ours holds; refused without running it (files are loaded with "
            "weights_only=True: tensors and DeepSpeed's own state only). Use a checkpoint written by "
            "ds_parrots from a source you trust"
        ) from None
    except Exception as e:  # noqa: BLE001  (any unreadable file becomes one clear line)
        raise ConfigError(
            f"cannot read checkpoint file {path}: {str(e).splitlines()[0][:300]} (files are loaded "
            "with weights_only=True: tensors and DeepSpeed's own state only)"
        ) from None


def check_checkpoint_files(tag_dir: Path) -> None:
    """Refuse a checkpoint step directory holding a .pt file that weights_only=True cannot load, before
    DeepSpeed's engine.load_checkpoint reads it: DeepSpeed 0.19's TorchCheckpointEngine.load calls
    torch.load(weights_only=False), which runs any code pickled into the file. Tensors are mapped, not read."""
    for f in sorted(Path(tag_dir).glob("*.pt")):
        safe_load(f, mmap=True)


def _ranked(paths, pattern: re.Pattern) -> list[Path]:
    found = sorted((int(pattern.match(p.name).group(1)), p) for p in paths if pattern.match(p.name))
    ranks = [r for r, _ in found]
    if ranks != list(range(len(ranks))):
        raise ConfigError(
            f"checkpoint {paths[0].parent if paths else ''}: rank files {ranks} are not "
            f"0..{len(ranks) - 1}; the checkpoint is incomplete (was it copied partially?)"
        )
    return [p for _, p in found]


def _expert_group_ranks(rank: int, world: int, ep: int) -> list[int]:
    """The expert-data-parallel group of `rank`, in partition order (DeepSpeed's E + D layout)."""
    return list(range(rank % ep, world, ep))


FP32 = "fp32"
"""The field of the fp32 master weights, among the partitioned fields the readers below take (the others are
keys of AdamW's state: exp_avg, exp_avg_sq, which lie in the partitions exactly as the weights do)."""


def _adam_states(opt: dict, state_key: str) -> dict:
    """The base optimizer's per-group state: one flat tensor per group, so state index g is group g (DeepSpeed
    saves torch's state_dict, or a list of per-group states in its elastic layout)."""
    found = opt.get(state_key)
    if isinstance(found, dict) and "state" in found:
        return found["state"]
    return dict(enumerate(found or []))


def _flat_field(opt: dict, fp32: list, state_key: str, field: str, g: int, where: Path) -> torch.Tensor:
    """Group g's flat partition of `field` on one rank: the fp32 weights, or an AdamW state of them cut to
    the weights' length (DeepSpeed saves the weights without the alignment padding the state keeps)."""
    if field == FP32:
        return fp32[g].float()
    state = _adam_states(opt, state_key).get(g) or {}
    if field not in state:
        raise ConfigError(
            f"{where}: no AdamW {field} for parameter group {g} (the checkpoint was saved before any "
            "optimizer step, or by another optimizer); continue with --train.init-optimizer reset"
        )
    return state[field].float()[: fp32[g].numel()]


def _zero12(
    files: list[Path], param_shapes: list[dict], world: int, ep: int, fields: dict[str, Callable]
) -> None:
    """ZeRO-1/2 (and bf16 without ZeRO): each group's flat fp32 vector is cut into equal contiguous
    partitions, one per rank of the group; parameters lie in it in param_shapes order. `fields`: the
    partitioned field (FP32 or an AdamW state key) -> the callback receiving its full tensors."""
    states = [safe_load(f)["optimizer_state_dict"] for f in files]
    paddings = states[0].get("param_alignment_paddings")
    for field, add in fields.items():
        flats = [
            [
                _flat_field(s, s["single_partition_of_fp32_groups"], "base_optimizer_state", field, g, f)
                for g in range(len(param_shapes))
            ]
            for s, f in zip(states, files)
        ]
        local_experts = None
        for g, shapes in enumerate(param_shapes):
            expert_group = any(is_expert_key(n) for n in shapes)
            roots = range(ep) if expert_group else [0]
            for root in roots:
                ranks = _expert_group_ranks(root, world, ep) if expert_group else list(range(world))
                full = torch.cat([flats[r][g] for r in ranks])
                offset = 0
                first = 0
                if expert_group:
                    local_experts = local_experts or local_expert_count(shapes)
                    first = (root % ep) * local_experts
                for i, (name, shape) in enumerate(shapes.items()):
                    numel = math.prod(shape)
                    if offset + numel > full.numel():
                        raise ConfigError(
                            f"{files[0].parent}: parameter {name} {tuple(shape)} runs past the saved fp32 "
                            f"partitions of group {g}; the checkpoint does not match its model states"
                        )
                    add(name, full[offset : offset + numel].view(*shape), first)
                    offset += numel + (
                        paddings[g][i] if paddings is not None and len(paddings[g]) == len(shapes) else 0
                    )


def _zero3(model_files: list[Path], optim_files: list[Path], fields: dict[str, Callable]) -> None:
    """ZeRO-3: every parameter is partitioned on its own over its partition group (ceil(n/p) per rank, the
    last rank padded); the flat groups of a family (replicated / experts) concatenate those slices in
    param_shapes order. AutoEP records each rank's partition groups and global expert range. `fields` as in
    _zero12."""
    models = [_model_states(f) for f in model_files]
    optims = [safe_load(f)["optimizer_state_dict"] for f in optim_files]
    world = len(models)
    # Flat vectors per family, field and rank, and the ranks that partition each family's parameters.
    families: dict[str, dict] = {}
    for r, o in enumerate(optims):
        groups = o.get("ds_zero_partition_groups")
        for sub in range(len(o["fp32_flat_groups"])):
            info = (
                groups[sub] if groups else {"partition_ranks": list(range(world)), "families": ["replicated"]}
            )
            family = "expert" if any("expert" in f for f in info.get("families", [])) else "replicated"
            fam = families.setdefault(family, {"flat": {}, "ranks": {}})
            for field in fields:
                flat = _flat_field(
                    o, o["fp32_flat_groups"], "optimizer_state_dict", field, sub, optim_files[r]
                )
                fam["flat"].setdefault(field, {}).setdefault(r, []).append(flat)
            fam["ranks"][r] = list(info["partition_ranks"])
    for family, fam in families.items():
        groups_done = set()
        for r in range(world):
            ranks = tuple(fam["ranks"][r])
            if ranks in groups_done:
                continue
            groups_done.add(ranks)
            shapes = [
                s
                for g in models[ranks[0]]["param_shapes"]
                for s in g.items()
                if is_expert_key(s[0]) == (family == "expert")
            ]
            starts = {
                layer["expert_key_prefix"]: layer["global_expert_start"]
                for layer in models[ranks[0]].get("ds_autoep_layers") or []
            }
            for field, add in fields.items():
                flats = [torch.cat(fam["flat"][field][q]) for q in ranks]
                offset = 0
                for name, shape in shapes:
                    numel = math.prod(shape)
                    part = math.ceil(numel / len(ranks))
                    if offset + part > flats[0].numel():
                        raise ConfigError(
                            f"{optim_files[0].parent}: parameter {name} {tuple(shape)} runs past the "
                            "saved fp32 partitions; the checkpoint does not match its model states"
                        )
                    value = torch.cat([f[offset : offset + part] for f in flats])[:numel].view(*shape)
                    add(name, value, starts.get(name.rsplit(".", 1)[0], 0))
                    offset += part


def _module_weights(model_file: Path, expert_files: list[Path], add: Callable) -> None:
    """Without ZeRO partitions: rank 0's module (non-expert weights) and one file per global expert."""
    for name, value in safe_load(model_file)["module"].items():
        add(name, value)
    for f in expert_files:
        for name, value in safe_load(f).items():
            add(name, value)


def _read(tag_dir: Path, model: ModelConfig, ep_size: int, fields: tuple[str, ...]) -> Optional[dict]:
    """{field: state dict in the single-device model's names} for the partitioned fields of one checkpoint
    tag directory (FP32: the weights); None when it asks for optimizer state from a checkpoint without ZeRO
    partitions, whose plain torch optimizer files name their tensors by position only."""
    tag_dir = Path(tag_dir)
    files = sorted(tag_dir.iterdir())
    expert_files = [f for f in files if _EXPERT_FILE.match(f.name)]
    optim_files = _ranked([f for f in files if _OPTIM_FILE.match(f.name)], _OPTIM_FILE)
    zero3_models = _ranked([f for f in files if _ZERO3_MODEL_FILE.match(f.name)], _ZERO3_MODEL_FILE)
    rank0 = tag_dir / "mp_rank_00_model_states.pt"
    assemble = {
        field: Collector(model, DEEPSPEED_LAYOUTS, source=f"checkpoint {tag_dir}", dtype=torch.float32)
        for field in fields
    }
    adders = {field: c.add for field, c in assemble.items()}
    ep = ep_size if model.is_moe else 1
    if zero3_models:
        if len(optim_files) != len(zero3_models):
            raise ConfigError(
                f"{tag_dir}: {len(zero3_models)} model-state files but {len(optim_files)} optimizer "
                "files; the checkpoint is incomplete"
            )
        _zero3(zero3_models, optim_files, adders)
    elif rank0.is_file():
        states = _model_states(rank0)
        world = int(states.get("dp_world_size") or max(len(optim_files), 1))
        opt = safe_load(optim_files[0])["optimizer_state_dict"] if optim_files else None
        if opt is not None and "single_partition_of_fp32_groups" in opt:
            if len(optim_files) != world:
                raise ConfigError(
                    f"{tag_dir}: {len(optim_files)} optimizer partitions for {world} ranks; the "
                    "checkpoint is incomplete"
                )
            del opt
            _zero12(optim_files, states["param_shapes"], world, ep, adders)
        elif fields != (FP32,):
            return None
        else:
            del states
            _module_weights(rank0, expert_files, adders[FP32])
    else:
        raise ConfigError(
            f"{tag_dir} holds no DeepSpeed model states (mp_rank_00_model_states.pt or "
            "zero_pp_rank_*_model_states.pt); point at a run directory or one checkpoint step"
        )
    return {field: c.state_dict() for field, c in assemble.items()}


def read_checkpoint(tag_dir: Path, model: ModelConfig, ep_size: int) -> dict[str, torch.Tensor]:
    """The fp32 state dict of one checkpoint tag directory, in the single-device model's names."""
    return _read(tag_dir, model, ep_size, (FP32,))[FP32]


ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


def read_adam_state(tag_dir: Path, model: ModelConfig, ep_size: int) -> Optional[tuple[dict, int]]:
    """({"exp_avg": state dict, "exp_avg_sq": state dict}, AdamW's update count) of one checkpoint tag
    directory, full tensors in the single-device model's names (what read_checkpoint gives for the weights);
    None for a checkpoint written without ZeRO (see _read)."""
    moments = _read(tag_dir, model, ep_size, ADAM_MOMENTS)
    if moments is None:
        return None
    files = sorted(Path(tag_dir).iterdir())
    rank0 = _ranked([f for f in files if _OPTIM_FILE.match(f.name)], _OPTIM_FILE)[0]
    opt = safe_load(rank0, mmap=True)["optimizer_state_dict"]
    key = "optimizer_state_dict" if "fp32_flat_groups" in opt else "base_optimizer_state"
    steps = {float(s["step"]) for s in _adam_states(opt, key).values() if "step" in s}
    if len(steps) != 1:
        raise ConfigError(
            f"{rank0}: AdamW's step count differs between parameter groups ({sorted(steps)}) or is missing; "
            "continue with --train.init-optimizer reset"
        )
    return moments, int(steps.pop())
