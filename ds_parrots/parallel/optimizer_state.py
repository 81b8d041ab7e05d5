"""Carry AdamW's state (exp_avg, exp_avg_sq and its update count) from any of our DeepSpeed checkpoints into a
freshly initialized engine at another world size, expert-parallel size, ZeRO stage or MoE backend: what
--train.init-from restores, so that a resharded run takes the very update the uninterrupted run would have.

Two halves, each the mirror of one the weights already have:
- reading: checkpoint_format.read_adam_state reassembles full per-parameter moments in the single-device
  model's names, through the same partition arithmetic as the fp32 weights (the moments lie in the optimizer
  partitions element for element as the master weights do). ZeRO-1/2/3, dense, native and AutoEP experts.
- writing: `restore` cuts those full tensors into this rank's parameters (state_dict_map's layout for the
  backend: native's local experts, AutoEP's stacked slice) and then into the live optimizer's flat partitions,
  by DeepSpeed's own record of where each parameter lies in them: ZeRO-1/2 (and bf16) each parameter's
  `_hp_mapping` fragment addresses, ZeRO-3 `grad_position` and the parameter's partition rank, and without
  ZeRO the parameters themselves. AdamW creates its state lazily at the first step; restore creates it first,
  whole, so that DeepSpeed links its fragments to it as it would to its own.
  These attributes are DeepSpeed-internal, checked with the versions in checkpoint_format.TESTED_DEEPSPEED
  (tests/integration/training/test_reshard_optimizer.py fails if one moves).

Why not DeepSpeed's universal checkpoint (ds_to_universal + load_universal, 0.19.8): it names tensors by
DeepSpeed's parameter names, so it cannot move between MoE backends (AutoEP's stacked w1/w3/w2 against
native's per-expert gate/up/down), it wants an offline conversion pass writing a second copy of the
checkpoint, and it loads weights and engine state as well, where ours already come from the consolidation
every other reader shares (which also handles the MoE expert files DeepSpeed's own zero_to_fp32 skips).

Not restored: a checkpoint written without ZeRO (its plain torch optimizer files name tensors by position
only) and a consolidated .safetensors or Hugging Face folder (no optimizer state at all): the moments then
restart from zero, and the log says so. Optimizer offload (CPU / NVMe) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ds_parrots.checkpoints.state_dict_map import is_expert_key, to_autoep, to_native
from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.errors import ConfigError
from ds_parrots.parallel.checkpoint_format import ADAM_MOMENTS, read_adam_state


@dataclass
class AdamState:
    """AdamW's state of a whole model: full tensors in the single-device model's names."""

    moments: dict[str, dict[str, torch.Tensor]]
    """"exp_avg" / "exp_avg_sq" -> {parameter name: tensor of the parameter's shape}."""
    step: int
    """AdamW's update count (its bias correction), which a skipped update does not advance."""


def read(path: Path) -> tuple[Optional[AdamState], str]:
    """(the AdamW state of the checkpoint at `path`, "") or (None, why it has none) for any path
    --train.init-from takes."""
    from ds_parrots.checkpoints.hf_import import is_hf_folder
    from ds_parrots.checkpoints.load import model_config, resolve, run_metadata

    path = Path(path)
    if path.suffix == ".safetensors" or is_hf_folder(path):
        return None, f"{path} is a consolidated checkpoint, which holds weights only"
    tag_dir, run_dir = resolve(path)
    meta = run_metadata(run_dir, tag_dir)
    found = read_adam_state(tag_dir, model_config(meta, run_dir / "config.json"), int(meta["ep_size"] or 1))
    if found is None:
        return None, f"{tag_dir} was written without ZeRO, whose optimizer files name no parameters"
    return AdamState(*found), ""


def local_state(state: dict[str, torch.Tensor], cfg: ModelConfig, moe: MoEConfig, rank: int) -> dict:
    """Ours renamed and cut to the parameters this rank's engine module holds: the router whole and this
    rank's experts (global (rank % ep) * L onwards, DeepSpeed's layout for both backends)."""
    if not cfg.is_moe:
        return state
    if moe.backend == "native":
        return to_native(state, cfg, moe.ep_size, rank)
    local = cfg.num_experts // moe.ep_size
    first = (rank % moe.ep_size) * local
    return {k: v[first : first + local] if is_expert_key(k) else v for k, v in to_autoep(state, cfg).items()}


def restore(engine, adam: AdamState, cfg: ModelConfig, moe: MoEConfig, rank: int) -> int:
    """Set the live optimizer's AdamW state from `adam`; returns the number of parameters set. Every trainable
    parameter must find its tensors (else a ConfigError names it)."""
    by_key = {k: local_state(adam.moments[k], cfg, moe, rank) for k in ADAM_MOMENTS}
    names = by_key[ADAM_MOMENTS[0]]
    found: dict[int, str] = {}
    for name, p in engine.module.named_parameters(remove_duplicate=False):
        if name in names or id(p) not in found:
            found[id(p)] = name

    def value(p: torch.nn.Parameter, key: str) -> torch.Tensor:
        name = found.get(id(p), "?")
        if name not in names:
            raise ConfigError(
                f"--train.init-from: the checkpoint holds no optimizer state for parameter {name}; "
                "continue with --train.init-optimizer reset"
            )
        t = by_key[key][name]
        if t.numel() != getattr(p, "ds_numel", p.numel()):
            raise ConfigError(
                f"--train.init-from: the optimizer state of {name} has shape {tuple(t.shape)}, the "
                f"parameter {tuple(getattr(p, 'ds_shape', p.shape))}; the checkpoint holds another model"
            )
        return t.flatten()

    opt = engine.optimizer
    if getattr(opt, "offload_optimizer", False) or getattr(opt, "cpu_offload", False):
        raise ConfigError(
            "--train.init-from: restoring AdamW's state under DeepSpeed optimizer offload is not supported; "
            "drop the offload from --train.ds-config or pass --train.init-optimizer reset"
        )
    step = torch.tensor(float(adam.step), dtype=torch.float32)
    if hasattr(opt, "fp32_partitioned_groups_flat"):  # ZeRO-3
        return _zero3(opt, value, step)
    flats = getattr(opt, "single_partition_of_fp32_groups", None) or getattr(
        opt, "fp32_groups_flat_partition", None
    )
    if flats is not None:  # ZeRO-1/2, or DeepSpeed's bf16 optimizer
        groups = getattr(opt, "bit16_groups", None) or opt.bf16_groups
        return _flat_partitions(opt.optimizer, flats, groups, value, step, _zero12_fragments)
    return _plain(opt, value, step)


def _new_state(torch_opt, flat: torch.Tensor, step: torch.Tensor) -> dict:
    # ZeRO-3 puts each flat vector into its param group only for the length of its step.
    listed = [q for g in torch_opt.param_groups for q in g["params"]]
    if listed and not any(flat is q for q in listed):
        raise RuntimeError(
            "a flat fp32 partition is not among the optimizer's parameters: DeepSpeed's layout changed"
        )
    state = {"step": _step_for(torch_opt, step, flat), **{k: torch.zeros_like(flat) for k in ADAM_MOMENTS}}
    torch_opt.state[flat] = state
    return state


def _step_for(torch_opt, step: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    # torch keeps a fused (or capturable) AdamW's update count on its parameter's device, else on the CPU.
    defaults = getattr(torch_opt, "defaults", {})
    on_device = defaults.get("fused") or defaults.get("capturable")
    return step.to(p.device if on_device else step.device, copy=True)


def _zero12_fragments(p, full: torch.Tensor):
    """(offset in the partition, this rank's piece of the parameter) under ZeRO-1/2, or None."""
    mapping = p._hp_mapping
    if mapping is None:  # no element of p in this rank's partition
        return None
    lp, hp = mapping.lp_fragment_address, mapping.hp_fragment_address
    return hp.start, full.narrow(0, lp.start, lp.numel)


def _flat_partitions(torch_opt, flats, groups, value: Callable, step, fragment: Callable) -> int:
    count = 0
    for flat, params in zip(flats, groups):
        state = _new_state(torch_opt, flat, step)
        for p in params:
            for key in ADAM_MOMENTS:
                piece = fragment(p, value(p, key))
                if piece is not None:
                    state[key].narrow(0, piece[0], piece[1].numel()).copy_(piece[1])
            count += 1
    return count


def _zero3(opt, value: Callable, step) -> int:
    """ZeRO-3: parameter p's ceil(n/p)-element partition on this rank lies at grad_position's offset in its
    sub-group's flat fp32 vector (the last rank's padded)."""

    def fragment(p, full: torch.Tensor):
        _, offset, numel = opt.grad_position[opt.get_param_id(p)]
        start = numel * opt._get_param_partition_rank(p)
        return offset, full[start : start + numel]

    return _flat_partitions(
        opt.optimizer, opt.fp32_partitioned_groups_flat, opt.fp16_groups, value, step, fragment
    )


def _plain(opt, value: Callable, step) -> int:
    """Without ZeRO: a torch AdamW over the module's own parameters."""
    count = 0
    for group in opt.param_groups:
        for p in group["params"]:
            if p.requires_grad:
                opt.state[p] = {
                    "step": _step_for(opt, step, p),
                    **{k: value(p, k).view_as(p).clone().to(p) for k in ADAM_MOMENTS},
                }
                count += 1
    return count


def restore_from(engine, path: Path, cfg: ModelConfig, moe: MoEConfig, rank: int, step: int) -> str:
    """--train.init-from's optimizer half, after parallelize: restore AdamW's state from `path` when it has
    one, and put the engine's step counters at `step`; returns what was done, for the log."""
    adam, why = read(path)
    if adam is None:
        return f"optimizer state reset ({why}: AdamW moments restart from zero)"
    restore(engine, adam, cfg, moe, rank)
    engine.global_steps = step
    engine.global_samples = step * engine.train_batch_size()
    return f"AdamW state restored (exp_avg, exp_avg_sq, update count {adam.step})"
