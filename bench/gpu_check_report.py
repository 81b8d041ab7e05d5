"""What the GPU check (bench/gpu_check.py) measures and what it makes of the measurements: the profiles and the
model grid with each MoE's dense twin, the MFU arithmetic, the ratios to the twins, the goal verdicts, the
bf16-vs-fp32 agreement, the compile choice, and the markdown table and JSON it prints and writes. Pure
functions, no GPU: tests/unit/bench/test_gpu_check.py exercises them on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bench_step import dense_twin

from ds_parrots.config import ModelConfig, preset_model
from ds_parrots.models.counting import human
from ds_parrots.training.throughput import throughput

GOAL_DENSE_MFU = 0.45  # Megatron-LM reaches 41-47% on H100
GOAL_MOE_VS_TWIN = 0.8  # MegaBlocks measured 0.49-0.69x at small sizes
# bf16 keeps 8 significant bits, so one rounding moves a value by at most 2**-8 = 0.39%. DeepSpeed's bf16 mode
# keeps fp32 master weights and lm_loss upcasts the logits, so the two runs differ by roundings of activations
# and gradients, which 20 Adam steps let drift apart: 2% allows five such roundings. What this check is for
# moves the loss far more: updates lost in a bf16 weight copy leave it flat while the fp32 run, memorizing its
# one batch, drops it by well over 2% in 20 steps; an overflow makes it inf or NaN.
BF16_LOSS_RTOL = 0.02


@dataclass(frozen=True)
class Profile:
    """What one mode measures: the models, their shape and the step."""

    dense: tuple[str, ...]
    """Dense presets measured for MFU."""
    moe: tuple[str, ...]
    """MoE presets, each measured on every backend against its dense twin."""
    n_layers: int
    """Blocks of every model (replaces the presets')."""
    vocab_size: Optional[int]
    """Vocabulary of every model; None: the presets' own (32000)."""
    seq_len: int
    """Tokens per sequence."""
    micro_batch: int
    """Sequences per forward."""
    accumulation: int
    """Micro-batches per optimizer step (gradient accumulation)."""
    warmup: int
    """Untimed steps before the timed ones."""
    steps: int
    """Timed steps; the median is reported."""
    precision_steps: int
    """Steps of the bf16-vs-fp32 check, every one compared."""


FULL = Profile(
    dense=("paper-dense-d1024", "paper-dense-d2048"),
    moe=("paper-moe-d512-e8", "paper-moe-d512-e64", "paper-moe-d1024-e8", "paper-moe-d1024-e64"),
    n_layers=20,
    vocab_size=None,
    seq_len=2048,
    # 4 x 2048 tokens per forward keeps d1024 E=64 (4.2B parameters: ~85 GB of bf16 weights and gradients,
    # fp32 master weights, gradients and AdamW moments) inside 139 GB; 2 micro-batches per step spread the
    # optimizer's pass over all parameters across 16,384 tokens.
    micro_batch=4,
    accumulation=2,
    warmup=3,
    steps=8,
    precision_steps=20,
)
# tiny-dense is tiny-moe's twin (ffn 128 = 2 x 64): three engines cover (a).
TINY = Profile(
    dense=("tiny-dense",),
    moe=("tiny-moe",),
    n_layers=2,
    vocab_size=256,
    seq_len=64,
    micro_batch=2,
    accumulation=1,
    warmup=1,
    steps=2,
    precision_steps=3,
)
QUICK = {"warmup": 1, "steps": 3, "precision_steps": 10}


@dataclass
class Spec:
    """One model on one backend."""

    name: str
    """The preset's name, or dense-twin-d<width>-ffn<ffn> for a twin that is no preset."""
    kind: str
    """dense (asked for), twin (the dense twin of an MoE, only as that) or moe."""
    cfg: ModelConfig
    """The model as measured (the profile's layers, vocabulary and sequence length)."""
    backend: str = "-"
    """moe: autoep or native; '-' for a dense model, which has no MoE layer."""
    twin: Optional[str] = None
    """moe: the name of its dense twin."""
    twin_of: list[str] = field(default_factory=list)
    """dense / twin: the MoE presets whose twin it is."""

    @property
    def label(self) -> str:
        return self.name if self.backend == "-" else f"{self.name} {self.backend}"


def model_config(preset: str, prof: Profile) -> ModelConfig:
    cfg = preset_model(preset)
    vocab = prof.vocab_size or cfg.vocab_size
    return dataclasses.replace(cfg, n_layers=prof.n_layers, vocab_size=vocab, max_seq_len=prof.seq_len)


def grid(prof: Profile, backends: list[str]) -> list[Spec]:
    """(a) in the order it runs: the dense models, then each MoE preset after its twin, on every backend. A twin
    is measured once per distinct config: a dense model asked for that equals it serves as it."""
    specs = [Spec(name, "dense", model_config(name, prof)) for name in prof.dense]
    for name in prof.moe:
        cfg = model_config(name, prof)
        twin_cfg = dense_twin(cfg)
        twin = next((s for s in specs if s.kind != "moe" and s.cfg == twin_cfg), None)
        if twin is None:
            twin = Spec(f"dense-twin-d{cfg.d_model}-ffn{twin_cfg.ffn}", "twin", twin_cfg)
            specs.append(twin)
        twin.twin_of.append(name)
        specs += [Spec(name, "moe", cfg, backend, twin=twin.name) for backend in backends]
    return specs


def precision_specs(specs: list[Spec]) -> list[Spec]:
    """(c) runs on the first MoE row and its twin (the smallest dense model: cheap in fp32)."""
    moe = next(s for s in specs if s.kind == "moe")
    return [next(s for s in specs if s.name == moe.twin), moe]


def compile_specs(specs: list[Spec]) -> list[Spec]:
    """(d) compiles the first dense model asked for and the first MoE row."""
    return [next(s for s in specs if s.kind == "dense"), next(s for s in specs if s.kind == "moe")]


def row_metrics(tokens: int, flops: float, seconds: float, peak_tflops: float) -> dict:
    """ms/step, tokens/s, achieved TFLOP/s and MFU of a step of `tokens` and `flops` (model FLOPs)."""
    tp = throughput(tokens, flops, seconds, 1, peak_tflops)
    return dict(
        ms_per_step=1000 * seconds,
        tokens_per_s=tp["tokens_per_s"],
        tflops=tp["tflops_per_device"],
        mfu=tp.get("mfu"),
    )


def add_twin_ratios(rows: list[dict]) -> None:
    """Each MoE row's tokens/s over its twin's (same tokens per step)."""
    twins = {r["name"]: r for r in rows if r["kind"] != "moe"}
    for r in (r for r in rows if r["kind"] == "moe"):
        twin = twins.get(r["twin"], {})
        ok = r["status"] == "ok" and twin.get("status") == "ok"
        r["vs_twin"] = r["tokens_per_s"] / twin["tokens_per_s"] if ok else None


def goal_verdicts(rows: list[dict]) -> list[dict]:
    """Dense MFU >= GOAL_DENSE_MFU; MoE tokens/s >= GOAL_MOE_VS_TWIN x its twin's. n/a: not measured."""
    out = []
    for r in rows:
        if r["kind"] == "twin":
            continue
        goal, key, target = (
            ("dense MFU", "mfu", GOAL_DENSE_MFU)
            if r["kind"] == "dense"
            else ("MoE tokens/s / twin", "vs_twin", GOAL_MOE_VS_TWIN)
        )
        value = r.get(key)
        verdict = "n/a" if value is None else "pass" if value >= target else "miss"
        out.append(dict(goal=goal, model=r["label"], value=value, target=target, verdict=verdict))
    return out


def agreement(bf16: list[float], fp32: list[float], rtol: float = BF16_LOSS_RTOL) -> dict:
    """The largest |bf16 - fp32| / |fp32| over the steps' losses, and whether it is within `rtol`."""
    if len(bf16) != len(fp32) or not fp32:
        raise ValueError(f"loss curves of {len(bf16)} and {len(fp32)} steps cannot be compared")
    rel = [abs(a - b) / abs(b) for a, b in zip(bf16, fp32)]
    worst = max(rel) if all(math.isfinite(x) for x in rel) else None  # NaN compares False: never "pass"
    return dict(
        steps=len(fp32),
        max_rel_diff=worst,
        worst_step=None if worst is None else rel.index(worst),
        tolerance=rtol,
        fp32_first_last=[fp32[0], fp32[-1]],
        bf16_first_last=[bf16[0], bf16[-1]],
        verdict="pass" if worst is not None and worst <= rtol else "fail",
    )


def compile_choice(eager_s: float, compiled_s: float) -> dict:
    """Compile on when a compiled step is faster; the ratio is eager / compiled time (> 1: compile wins)."""
    ratio = eager_s / compiled_s
    return dict(
        eager_ms=1000 * eager_s,
        compiled_ms=1000 * compiled_s,
        speedup=ratio,
        choice="on" if ratio > 1 else "off",
    )


def exit_code(report: dict) -> int:
    rows = report["grid"] + report["precision"] + report["compile"]
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _f(value, fmt: str, scale: float = 1.0, suffix: str = "") -> str:
    return "-" if value is None else f"{value * scale:{fmt}}{suffix}"


def _table(head: str, rows: list[dict], cells) -> list[str]:
    """A markdown table: `head` is 'name:align|...' (align l or r); cells(row) gives a row's cells; a row that
    did not run shows its status and error in its first cell and nothing else."""
    names, aligns = zip(*(h.split(":") for h in head.split("|")))
    lines = [
        "| " + " | ".join(names) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in aligns) + "|",
    ]
    for r in rows:
        ran = r["status"] == "ok"
        first = r.get("label") or r["model"]
        row = (
            cells(r)
            if ran
            else [f"{first} **{r['status']}**: {r.get('error', '')}"] + [""] * (len(names) - 1)
        )
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render_markdown(report: dict) -> str:
    h = report["header"]
    out = [
        f"# GPU check, {h['date']}",
        "",
        f"- {h['device']}; torch {h['torch']}, DeepSpeed {h['deepspeed']}",
    ]
    out += [f"- {line}" for line in h["setup"]] + ["", "## (a) tokens/s and MFU, (b) peak memory", ""]
    out += _table(
        "model:l|active:r|total:r|ms/step:r|tokens/s:r|TFLOP/s:r|MFU:r|peak GiB:r|tokens/s vs twin:r",
        report["grid"],
        lambda r: [
            r["label"] + (f" (twin of {', '.join(r['twin_of'])})" if r["twin_of"] else ""),
            human(r["active"]),
            human(r["total"]),
            _f(r["ms_per_step"], ".1f"),
            _f(r["tokens_per_s"], ",.0f"),
            _f(r["tflops"], ".1f"),
            _f(r["mfu"], ".1f", 100, "%"),
            _f(r["peak_mem_gib"], ".1f"),
            _f(r.get("vs_twin"), ".2f", suffix="x"),
        ],
    )
    out += ["", "## Goals", "", "| goal | model | value | target | verdict |", "|---|---|---:|---:|---|"]
    for g in report["goals"]:
        mfu = g["goal"] == "dense MFU"
        value = _f(g["value"], ".1f", 100, "%") if mfu else _f(g["value"], ".2f", suffix="x")
        target = f"{100 * g['target']:.0f}%" if mfu else f"{g['target']:.2f}x"
        out.append(f"| {g['goal']} | {g['model']} | {value} | {target} | {g['verdict']} |")
    out += ["", "## (c) bf16 vs fp32 loss", ""]
    out += _table(
        "model:l|steps:r|fp32 loss first -> last:l|bf16 first -> last:l|max rel diff:r|tolerance:r|verdict:l",
        report["precision"],
        lambda r: [
            r["model"],
            str(r["steps"]),
            "{:.4f} -> {:.4f}".format(*r["fp32_first_last"]),
            "{:.4f} -> {:.4f}".format(*r["bf16_first_last"]),
            _f(r["max_rel_diff"], ".2e"),
            f"{r['tolerance']:g}",
            r["verdict"],
        ],
    )
    out += ["", "## (d) torch.compile", ""]
    out += _table(
        "model:l|eager ms/step:r|compiled ms/step:r|eager / compiled:r|compile:l|first compiled step s:r",
        report["compile"],
        lambda r: [
            r["model"],
            f"{r['eager_ms']:.1f}",
            f"{r['compiled_ms']:.1f}",
            f"{r['speedup']:.2f}x",
            r["choice"],
            f"{r['first_step_s']:.1f}",
        ],
    )
    return "\n".join(out + ["", *[f"- {n}" for n in report["notes"]]]) + "\n"


def _finite(obj):
    """Non-finite floats as null: NaN and Infinity are not JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def write_outputs(report: dict, out: Optional[str]) -> None:
    if out:
        from ds_parrots.fileio import write_text_atomic

        Path(out).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(out) / "gpu_check.json", json.dumps(_finite(report), indent=1) + "\n")
        write_text_atomic(Path(out) / "gpu_check.md", render_markdown(report))
