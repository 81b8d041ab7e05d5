"""`ds-parrots reproduce pretrain --scale smoke|tiny|paper`: the paper's pre-training experiment through the real
pipeline, grid to report.

    corpus -> tokenizer -> prepare (smoke and tiny generate their corpus; paper reads the user's mixtures)
    per model: train on the mixture -> consolidate -> ds-parrots-eval (knowledge) -> ds-parrots-eval gap (math)
    summary.json, table.md, figures, report.md (verdicts computed from the summary)

Runs are planned and trained by the sweep's machinery (probes.py: checked by train.py's parser first, one
directory and log per run, a finished run skipped, an interrupted one resumed); every other step is resumable
too (pretrain_steps.py), so a rerun after a complete reproduction only rebuilds the report and figures. A step
that fails is reported with its log; that model's later steps are skipped and the other models go on.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ds_parrots.models.counting import human
from ds_parrots.reproduce.pretrain_scales import PretrainExperiment
from ds_parrots.reproduce.pretrain_steps import Step

if TYPE_CHECKING:
    from ds_parrots.cli.reproduce_pretrain import PretrainArgs


@dataclass(frozen=True)
class Data:
    """What the runs train on and what scores them."""

    mixture: str
    data_root: Optional[str]
    tokenizer: Optional[str]
    bench_dir: Optional[str]
    corpus: Optional[Path] = None
    """The generated corpus folder (smoke, tiny); None: the user's data (paper)."""


def root_of(args: PretrainArgs, exp: PretrainExperiment) -> Path:
    tag = "" if exp.corpus else f"-{Path(args.mixture).stem}"
    return Path(args.out_dir) / f"pretrain-{args.scale}{tag}"


def data_of(args: PretrainArgs, exp: PretrainExperiment, root: Path) -> Data:
    from ds_parrots.reproduce.pretrain_steps import tokenizer_path

    if exp.corpus is None:
        return Data(args.mixture, args.data_root, args.tokenizer, args.bench_dir)
    folder = root / f"corpus-s{args.seed}"
    return Data(
        str(folder / "mixture.json"), str(folder), str(tokenizer_path(folder)), str(folder / "eval"), folder
    )


def run_name(spec, seed: int) -> str:
    return f"pretrain-{spec.name}-s{seed}"


def points(args: PretrainArgs, exp: PretrainExperiment, data: Data) -> list:
    """One sweep grid point per model: its model, data, length and seed (what --extra may not override)."""
    from ds_parrots.sweep.grids import Point

    def flag(name: str, value) -> tuple[str, ...]:
        return () if value is None else (name, str(value))

    steps = args.steps if args.steps is not None else exp.steps
    shared = (
        *flag("--data.mixture", data.mixture),
        *flag("--data.data-root", data.data_root),
        *flag("--data.tokenizer", data.tokenizer),
        *flag("--model.vocab-size", exp.corpus.vocab_size if exp.corpus else None),
        *flag("--model.max-seq-len", exp.max_seq_len),
        *flag("--data.seq-len", exp.seq_len),
        *flag("--train.steps", steps),
        *flag("--train.global-batch", exp.global_batch),
        *flag("--train.seed", args.seed),
    )
    return [
        Point(
            run_name(s, args.seed), "pretrain", {"width": s.width, "experts": s.experts}, (*s.args, *shared)
        )
        for s in exp.models
    ]


def _config(planned):
    from ds_parrots.reproduce.experiments import _config as parse

    return parse(planned)


def training_text(planned) -> tuple[str, Optional[int]]:
    """('1,500 steps x 32 sequences x 128 tokens', tokens) of a planned run, as train.py parses it."""
    run = _config(planned)
    steps, batch, seq = run.train.steps, run.train.global_batch, run.data.seq_len
    return f"{steps:,} steps x {batch} sequences x {seq:,} tokens", steps * batch * seq


MATCH = 0.10
"""A dense model 'matches' an MoE's total parameters when within this relative difference (display only: the
verdicts compare with the dense curve at the MoE's total, verdicts.dense_at)."""


def _short(name: str) -> str:
    return name.removeprefix("pretrain-").rsplit("-s", 1)[0]


def partners(runs: dict) -> dict[str, str]:
    """Per MoE run, how its parameters compare with the dense runs: active against the dense model of its width
    (matched active), total against the dense curve (matched total, or the two dense models around it)."""
    dense = sorted((r for r in runs.values() if r.keys["experts"] == 1), key=lambda r: r.params["total"])
    out = {}
    for r in runs.values():
        if r.keys["experts"] == 1 or not dense:
            continue
        total = r.params["total"]
        twin = [d for d in dense if d.keys["width"] == r.keys["width"]]
        text = (
            f"active {100 * (r.params['active'] / twin[0].params['active'] - 1):+.1f}% vs {_short(twin[0].name)}; "
            if twin
            else ""
        )
        near = min(dense, key=lambda d: abs(math.log(total / d.params["total"])))
        below = [d for d in dense if d.params["total"] <= total]
        above = [d for d in dense if d.params["total"] >= total]
        if abs(total / near.params["total"] - 1) <= MATCH:
            text += f"total {100 * (total / near.params['total'] - 1):+.1f}% vs {_short(near.name)}"
        elif below and above:
            text += f"total between {_short(below[-1].name)} and {_short(above[0].name)}"
        else:
            text += "total outside the dense models' range (not compared)"
        out[r.name] = text
    return out


def header(args: PretrainArgs, exp: PretrainExperiment, runs: dict, threads: Optional[str]) -> str:
    launcher = "python" if args.num_gpus == 1 else f"deepspeed --num_gpus {args.num_gpus}"
    text, tokens = training_text(next(iter(runs.values())))
    lines = [
        f"reproduce pretrain --scale {args.scale}: {exp.description}",
        f"  {len(runs)} models, {text}" + (f" = {tokens:,} tokens" if tokens else "") + f" each, {launcher} per "
        "run" + (f", OMP_NUM_THREADS={threads}" if threads else ""),
    ]  # fmt: skip
    matched = partners(runs)
    for r in runs.values():
        match = f"  ({matched[r.name]})" if r.name in matched else ""
        lines.append(
            f"  {r.name:<28} total {human(r.params['total']):>7}  active {human(r.params['active']):>7}{match}"
        )
    return "\n".join(lines)


def eval_argvs(
    exp: PretrainExperiment, checkpoint: Path, data: Data, limit: Optional[int]
) -> tuple[list, list]:
    """(ds-parrots-eval arguments, ds-parrots-eval gap arguments) of one consolidated model."""
    limit = limit if limit is not None else exp.eval_limit
    common = [
        "--bench-dir", data.bench_dir or "BENCH_DIR",  # (only a dry run or --emit lacks one)
        *(["--few-shot", exp.few_shot] if exp.few_shot is not None else []),
        *(["--limit", str(limit)] if limit is not None else []),
        *(["--bootstrap-iters", "0"] if exp.corpus else []),  # exact match: a closed-form stderr
        "--no-progress",
    ]  # fmt: skip
    return (
        [str(checkpoint), "--tasks", exp.eval_tasks, *common],
        ["gap", str(checkpoint), "--tasks", exp.gap_tasks, *common],
    )


def outputs(root: Path, name: str) -> tuple[Path, Path, Path]:
    """(consolidated weights, eval results, gap results) of one run."""
    return (
        root / "consolidated" / f"{name}.safetensors",
        root / "eval" / f"{name}.eval.json",
        root / "eval" / f"{name}.gap.json",
    )


def data_steps(data: Data, seed: int, exp: PretrainExperiment, logs: Path) -> list[Step]:
    """corpus, tokenizer, prepare per source, each after the one before succeeded."""
    from ds_parrots.reproduce.pretrain_steps import SOURCES, corpus_step, prepare_step, tokenizer_step

    steps = [corpus_step(data.corpus, seed, exp.corpus, logs / "corpus.log")]
    todo = [lambda: tokenizer_step(data.corpus, exp.corpus.vocab_size, logs / "tokenizer.log")]
    todo += [lambda s=s: prepare_step(data.corpus, s, logs / f"prepare-{s}.log") for s in SOURCES]
    for step in todo:
        if steps[-1].status == "failed":
            break
        steps.append(step())
    return steps


def model_steps(
    planned, root: Path, data: Data, exp: PretrainExperiment, args: PretrainArgs, known: dict
) -> list[Step]:
    """train -> consolidate -> eval -> gap of one model; a failed step ends its chain."""
    from ds_parrots.reproduce.pretrain_steps import consolidate_step, eval_step
    from ds_parrots.reproduce.probes import run_probe

    logs = root / "logs"
    probe = run_probe(planned, root, args.num_gpus, known.get((planned.name, "train")))
    status = {"trained": "ran", "done before": "done before", "failed": "failed"}[probe.status]
    steps = [
        Step(
            "train",
            status,
            probe.seconds,
            str(planned.run_dir),
            planned.command,
            f"see {probe.log}" if status == "failed" else "",
        )
    ]
    weights, eval_out, gap_out = outputs(root, planned.name)
    eval_argv, gap_argv = eval_argvs(exp, weights, data, args.limit)
    chain = [
        lambda: consolidate_step(planned.run_dir, weights, logs / f"{planned.name}.consolidate.log"),
        lambda: eval_step(
            "eval", eval_argv, eval_out, args.num_gpus, logs / f"{planned.name}.eval.log", weights
        ),
        lambda: eval_step("gap", gap_argv, gap_out, args.num_gpus, logs / f"{planned.name}.gap.log", weights),
    ]
    for step in chain:
        if steps[-1].status == "failed":
            break
        steps.append(step())
    for s in steps:  # a step reused from an earlier invocation keeps the time that invocation measured
        if s.status == "done before" and s.seconds is None:
            s.seconds = known.get((planned.name, s.name))
    return steps


def known_seconds(root: Path) -> dict:
    """(run or 'data', step) -> seconds, from the summary an earlier invocation wrote."""
    from ds_parrots.reproduce.pretrain_report import SUMMARY

    path = root / SUMMARY
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    known = {("data", s["name"]): s["seconds"] for s in data.get("data_steps", [])}
    for m in data.get("models", []):
        known.update({(m["run"], s["name"]): s["seconds"] for s in m["steps"]})
    return {k: v for k, v in known.items() if v is not None}


def _read(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.is_file() else None


def model_summary(planned, steps: list[Step], root: Path) -> dict:
    from ds_parrots.reproduce.pretrain_report import scores_of
    from ds_parrots.reproduce.report import model_entry

    _, eval_out, gap_out = outputs(root, planned.name)
    ok = {s.name for s in steps if s.status != "failed"}
    scores, counts = scores_of(
        _read(eval_out) if "eval" in ok else None, _read(gap_out) if "gap" in ok else None
    )
    results = _read(planned.run_dir / "results.json") if "train" in ok else None
    return {
        **model_entry(_short(planned.name), _config(planned).model, planned.params),
        "run": planned.name,
        "run_dir": str(planned.run_dir),
        "val_loss": (results or {}).get("metrics", {}).get("val_loss"),
        "scores": scores,
        "documents": counts,
        "eval_results": str(eval_out) if "eval" in ok else None,
        "gap_results": str(gap_out) if "gap" in ok else None,
        "steps": [s.as_dict() for s in steps],
    }


def _step_text(s: Step) -> str:
    seconds = "" if s.seconds is None else f", {s.seconds:.0f} s"
    return f"{s.name} {s.status}{seconds}" + (f" ({s.error})" if s.status == "failed" else "")


def reproduce(args: PretrainArgs, exp: PretrainExperiment, root: Path, runs: dict, data: Data) -> int:
    """Every step of every model, then the report; 1 when any step failed."""
    from ds_parrots.reproduce.pretrain_report import REPORT, score_labels, write_all

    start, known = time.monotonic(), known_seconds(root)
    text, tokens = training_text(next(iter(runs.values())))
    summary = {
        "kind": "pretrain_accuracy", "experiment": "pretrain", "scale": args.scale, "description": exp.description,
        "seed": args.seed, "steps_text": text, "tokens_per_run": tokens, "mixture": data.mixture,
        "bench_dir": data.bench_dir, "num_gpus": args.num_gpus, "extra": args.extra,
        "corpus": None if exp.corpus is None else {**vars(exp.corpus), "folder": str(data.corpus)},
        "score_labels": score_labels(exp.eval_tasks, exp.gap_tasks, commonsense=exp.corpus is None),
        "data_steps": [], "models": [],
    }  # fmt: skip
    failed = 0
    if data.corpus is not None:
        steps = data_steps(data, args.seed, exp, root / "logs")
        for s in steps:
            s.seconds = s.seconds if s.seconds is not None else known.get(("data", s.name))
            print(f"data: {_step_text(s)}", flush=True)
        summary["data_steps"] = [s.as_dict() for s in steps]
        if steps[-1].status == "failed":
            write_all(root, summary, figures=False)
            print(f"the data could not be made; see {root / 'logs'}")
            return 1
    for i, planned in enumerate(runs.values(), 1):
        steps = model_steps(planned, root, data, exp, args, known)
        failed += any(s.status == "failed" for s in steps)
        entry = model_summary(planned, steps, root)
        summary["models"].append(entry)
        summary["wall_seconds"] = round(time.monotonic() - start, 1)
        write_all(root, summary, figures=False)  # an interrupted reproduction still shows what it found
        s = entry["scores"]
        found = ", ".join(
            f"{k.replace('_', ' ')} {v:+.3f}" if k == "math_gap" else f"{k.replace('_', ' ')} {100 * v:.1f}%"
            for k, v in s.items() if v is not None
        )  # fmt: skip
        print(
            f"[{i}/{len(runs)}] {entry['name']}: {'; '.join(map(_step_text, steps))}"
            + (f" -> {found}" if found else ""),
            flush=True,
        )
    summary["wall_seconds"] = round(time.monotonic() - start, 1)
    scored = any(v is not None for m in summary["models"] for v in m["scores"].values())
    paths = write_all(root, summary, figures=scored)  # every model failed: no figure, the table says so
    print((root / "table.md").read_text(), end="")
    print("\n".join(f"verdict: {v['text']}" for v in summary["verdicts"]))
    print(f"wrote {', '.join(str(p) for p in paths)} (the report: {root / REPORT})")
    print(
        f"done in {summary['wall_seconds']:.0f} s (every step, earlier invocations' included: "
        f"{summary['step_seconds']:.0f} s)"
        + (f"; {failed} model(s) with a failed step, see the logs" if failed else "")
    )
    return 1 if failed else 0
