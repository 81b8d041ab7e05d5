"""`ds-parrots reproduce phonebook|shortest-path --scale smoke|tiny|paper`: one of the paper's synthetic
experiments, from its grid of models to its figure, in one command.

phonebook: for every model, the largest book it memorizes (>= 90% exact match) by bisection over a ladder of book
sizes (bisect.py), each probe a training run from scratch; shortest-path: one run per model. The grids, ladders
and training lengths of each scale are in scales.py; runs are planned and trained through the sweep's machinery
(probes.py), so every run is checked by train.py's parser first, has its own directory named from its config
(a rerun skips finished runs; `tensorboard --logdir <out-dir>/<experiment>-<scale>` compares them) and its own
log. The summary, table and figure are written by report.py, the figure by `ds-parrots-eval plot`'s code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ds_parrots.reproduce.bisect import Search, bisect_ladder, max_probes
from ds_parrots.reproduce.scales import Experiment, ModelSpec

if TYPE_CHECKING:
    from ds_parrots.cli.reproduce import ReproduceArgs


_SIZE = {"phonebook": "book size", "shortest-path": "training examples"}  # what an epoch passes over


def _run_name(experiment: str, spec: ModelSpec, seed: int, book: Optional[int] = None) -> str:
    return f"{experiment}{'' if book is None else f'-n{book}'}-{spec.name}-s{seed}"


def _points(args: ReproduceArgs, exp: Experiment, epochs: float) -> list:
    """Every run the experiment may need as a sweep grid point: phonebook, each model at each rung of the ladder."""
    from ds_parrots.sweep.grids import Point

    seeds = ("--train.seed", str(args.seed), "--task.seed", str(args.seed))
    points = []
    for spec in exp.models:
        keys = {"width": spec.width, "experts": spec.experts}
        if args.experiment == "phonebook":
            for book in exp.ladder:
                points.append(
                    Point(
                        _run_name("phonebook", spec, args.seed, book),
                        "phonebook",
                        {**keys, "book_size": book},
                        (
                            *spec.args,
                            "--task.book-size",
                            str(book),
                            "--train.steps",
                            str(exp.steps(book, epochs)),
                            "--train.global-batch",
                            str(exp.global_batch),
                            *seeds,
                        ),
                    )
                )
        else:
            points.append(
                Point(
                    _run_name("shortest-path", spec, args.seed),
                    "shortest-path",
                    keys,
                    (
                        *spec.args,
                        "--task.num-train",
                        str(exp.num_train),
                        "--train.steps",
                        str(exp.steps(exp.num_train, epochs)),
                        "--train.global-batch",
                        str(exp.global_batch),
                        *seeds,
                    ),
                )
            )
    return points


def _header(args: ReproduceArgs, exp: Experiment, epochs: float, runs: dict, threads: Optional[str]) -> str:
    from ds_parrots.models.counting import human

    launcher = "python" if args.num_gpus == 1 else f"deepspeed --num_gpus {args.num_gpus}"
    lines = [
        f"reproduce {args.experiment} --scale {args.scale}: {exp.description}",
        f"  {len(exp.models)} models, {epochs:g} epochs per run ({exp.steps_rule(_SIZE[args.experiment])}), "
        f"{launcher} per run" + (f", OMP_NUM_THREADS={threads}" if threads else ""),
    ]
    for spec in exp.models:
        first = runs[_run_name(args.experiment, spec, args.seed, exp.ladder[0] if exp.ladder else None)]
        total, active = human(first.params["total"]), human(first.params["active"])
        lines.append(f"  {spec.name:<10} total {total:>7}  active {active:>7}")
    if exp.ladder:
        lines.append(
            f"  ladder ({len(exp.ladder)} rungs, at most {max_probes(len(exp.ladder))} probes per model): "
            + ", ".join(f"{b:,} ({exp.steps(b, epochs):,} steps)" for b in exp.ladder)
        )
    return "\n".join(lines)


def _config(planned):
    """The run's configuration as train.py parses its arguments."""
    from ds_parrots.cli.train import parse

    return parse(planned.args)


def _model_entry(spec: ModelSpec, planned) -> dict:
    from ds_parrots.reproduce.report import model_entry

    return model_entry(spec.name, _config(planned).model, planned.params)


def _seconds_text(probe) -> str:
    if probe.status == "done before":
        return "done before" + (f", {probe.seconds:.0f} s" if probe.seconds is not None else "")
    return f"{probe.seconds:.0f} s"


def _summary_head(kind: str, experiment: str, metric: str, args: ReproduceArgs, exp: Experiment) -> dict:
    """The first fields of every experiment's summary.json."""
    return {
        "kind": kind,
        "experiment": experiment,
        "scale": args.scale,
        "description": exp.description,
        "seed": args.seed,
        "metric": metric,
    }


def _phonebook(args: ReproduceArgs, exp: Experiment, epochs: float, root: Path, runs: dict) -> int:
    from ds_parrots.reproduce.probes import run_probe
    from ds_parrots.reproduce.report import known_seconds, probe_entry, write_summary
    from ds_parrots_eval.plot import phonebook_passed

    start, seconds_before = time.monotonic(), known_seconds(root)
    summary = {
        **_summary_head("phonebook_capacity", "phonebook", "exact_match", args, exp),
        "pass_threshold": _config(next(iter(runs.values()))).task.pass_threshold,
        "ladder": list(exp.ladder),
        "epochs": epochs,
        "global_batch": exp.global_batch,
        "steps_rule": exp.steps_rule(_SIZE["phonebook"]),
        "steps": {str(b): exp.steps(b, epochs) for b in exp.ladder},
        "num_gpus": args.num_gpus,
        "extra": args.extra,
        "models": [],
    }
    failed = 0
    for i, spec in enumerate(exp.models, 1):
        head = f"[{i}/{len(exp.models)}] {spec.name}"
        probes: list[dict] = []

        def passes(book: int, spec=spec, probes=probes, head=head) -> Optional[bool]:
            planned = runs[_run_name("phonebook", spec, args.seed, book)]
            probe = run_probe(planned, root, args.num_gpus, seconds_before.get(planned.name))
            if probe.results is None:
                probes.append(
                    probe_entry(
                        probe, book, exp.steps(book, epochs), {"exact_match": None}, None, planned.run_dir
                    )
                )
                print(
                    f"{head} book {book:,}: FAILED to run ({probe.seconds:.0f} s), log {probe.log}",
                    flush=True,
                )
                return None
            accuracy = probe.results["metrics"]["exact_match"]
            ok = phonebook_passed(probe.results)
            probes.append(
                probe_entry(
                    probe, book, exp.steps(book, epochs), {"exact_match": accuracy}, ok, planned.run_dir
                )
            )
            print(
                f"{head} book {book:,}: exact match {100 * accuracy:.1f}% {'PASS' if ok else 'fail'} "
                f"({_seconds_text(probe)})",
                flush=True,
            )
            return ok

        search: Search = bisect_ladder(exp.ladder, passes)
        failed += search.bound == "error"
        entry = {
            **_model_entry(spec, runs[_run_name("phonebook", spec, args.seed, exp.ladder[0])]),
            "capacity": search.capacity,
            "bound": search.bound,
            "probes": probes,
        }
        summary["models"].append(entry)
        summary["wall_seconds"] = round(time.monotonic() - start, 1)
        write_summary(root, summary)
        print(f"{head}: capacity {_capacity_line(search)} after {len(search.probes)} probe(s)", flush=True)
    return _finish(root, summary, failed)


def _capacity_line(search: Search) -> str:
    return {
        "exact": lambda: f"{search.capacity:,} (the next rung failed)",
        "at_least": lambda: f">= {search.capacity:,} (passed the largest book)",
        "below": lambda: f"< {search.ladder[0]:,} (failed the smallest book)",
        "error": lambda: "unknown: a probe crashed",
    }[search.bound]()


def _shortest_path(args: ReproduceArgs, exp: Experiment, epochs: float, root: Path, runs: dict) -> int:
    from ds_parrots.reproduce.probes import run_probe
    from ds_parrots.reproduce.report import known_seconds, probe_entry, write_summary

    start, seconds_before = time.monotonic(), known_seconds(root)
    summary = {
        **_summary_head("shortest_path_accuracy", "shortest-path", "valid_shortest", args, exp),
        "epochs": epochs,
        "num_train": exp.num_train,
        "global_batch": exp.global_batch,
        "steps_rule": exp.steps_rule(_SIZE["shortest-path"]),
        "num_gpus": args.num_gpus,
        "extra": args.extra,
        "runs": [],
    }
    failed = 0
    for i, spec in enumerate(exp.models, 1):
        name = _run_name("shortest-path", spec, args.seed)
        planned = runs[name]
        probe = run_probe(planned, root, args.num_gpus, seconds_before.get(name))
        steps = exp.steps(exp.num_train, epochs)
        if probe.results is None:
            failed += 1
            metrics = {"accuracy": None, "exact_match": None}
            print(
                f"[{i}/{len(exp.models)}] {spec.name}: FAILED to run ({probe.seconds:.0f} s), log {probe.log}",
                flush=True,
            )
        else:
            m = probe.results["metrics"]
            metrics = {"accuracy": m["valid_shortest"], "exact_match": m["exact_match"]}
            print(
                f"[{i}/{len(exp.models)}] {spec.name}: valid shortest path {100 * m['valid_shortest']:.1f}%, exact "
                f"match {100 * m['exact_match']:.1f}% ({_seconds_text(probe)})",
                flush=True,
            )
        summary["runs"].append(
            {**_model_entry(spec, planned), **probe_entry(probe, None, steps, metrics, None, planned.run_dir)}
        )
        summary["wall_seconds"] = round(time.monotonic() - start, 1)
        write_summary(root, summary)
    return _finish(root, summary, failed)


def _finish(root: Path, summary: dict, failed: int) -> int:
    from ds_parrots.reproduce.report import TABLE, draw, write_summary

    paths = write_summary(root, summary)
    drawable = [m for m in summary.get("models", []) if m["bound"] != "error"] + [
        r for r in summary.get("runs", []) if r["accuracy"] is not None
    ]
    figures = draw(root) if drawable else []  # every run crashed: nothing to draw, the table says so
    print((root / TABLE).read_text(), end="")
    print(f"wrote {', '.join(str(p) for p in (*paths, *figures))}")
    what = "probe" if summary["kind"] == "phonebook_capacity" else "run"
    print(
        f"done in {summary['wall_seconds']:.0f} s"
        + (f"; {failed} model(s) with a crashed {what}, see the logs" if failed else "")
    )
    return 1 if failed else 0
