"""`ds-parrots-eval plot results/*.json --out figs/`: the paper's figures, as PNG files, from result files.

What a file holds decides what it feeds (several kinds may be mixed on one command line):

- benchmark results (`"kind": "benchmarks"`): accuracy per category against total parameters, one panel per
  category (world knowledge, commonsense, math) -> benchmarks.png;
- phone-book capacity: the summary of `ds-parrots reproduce phonebook` (`"kind": "phonebook_capacity"`), or
  the `results.json` of phone-book training runs (a model's capacity is then the largest book among its runs
  that passed) -> phonebook_capacity.png, against total and against active parameters;
- shortest path: the summary of `ds-parrots reproduce shortest-path` (`"kind": "shortest_path_accuracy"`), or
  shortest-path runs' `results.json` -> shortest_path.png, accuracy against width, one line per expert count;
- pre-training: the summary of `ds-parrots reproduce pretrain` (`"kind": "pretrain_accuracy"`) ->
  pretrain_knowledge.png, pretrain_math.png, pretrain_gap.png (plot_pretrain.py).

The series follow the paper's figures: one line per MoE width joining its expert counts, one line joining the
dense models. Figures are drawn on matplotlib `Figure` objects (no pyplot, no global backend state), which
render PNG through Agg.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from ds_parrots.errors import ConfigError
from ds_parrots_eval.plot_inputs import Capacity, Model, read_inputs

CATEGORIES = ("world_knowledge", "commonsense", "math")  # the paper's order; other categories follow


BENCHMARKS_PNG, CAPACITY_PNG, SHORTEST_PATH_PNG = (
    "benchmarks.png",
    "phonebook_capacity.png",
    "shortest_path.png",
)


def _series(items: list, model_of) -> list[tuple[str, list]]:
    """The paper's lines: the dense models joined by size, then each MoE width joined over its expert counts."""
    dense = sorted((i for i in items if not model_of(i).is_moe), key=lambda i: model_of(i).total)
    series = [("dense", dense)] if dense else []
    for width in sorted({model_of(i).d_model for i in items if model_of(i).is_moe}):
        series.append(
            (
                f"MoE d={width}",
                sorted(
                    (i for i in items if model_of(i).is_moe and model_of(i).d_model == width),
                    key=lambda i: model_of(i).num_experts,
                ),
            )
        )
    return series


def _style(index: int, name: str) -> dict:
    if name == "dense":
        return {"color": "black", "marker": "s", "linestyle": "--"}
    return {"color": f"C{index % 10}", "marker": "o", "linestyle": "-"}


def _annotate(ax, model: Model, x: float, y: float) -> None:
    """Each point says what it is (E8 on the MoE lines, d256 on the dense one), since lines join unlike models."""
    # MoE labels below their point, dense above: the paper's comparisons put the two at the same place.
    ax.annotate(
        f"E{model.num_experts}" if model.is_moe else f"d{model.d_model}",
        (x, y),
        fontsize=7,
        textcoords="offset points",
        xytext=(4, -10) if model.is_moe else (4, 4),
    )


def _count(value: float, _=None) -> str:
    """Tick label of a parameter count or book size: 60K, 2M, 500."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _log_axis(axis) -> None:
    """Log axis ticked at 1-2-5 steps, labelled 60K / 2M, no minor labels (they collide at these ranges)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(_count))
    axis.set_minor_formatter(NullFormatter())


def _new_figure(panels: int, width: float = 5.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * panels, 4.2), layout="constrained")
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def benchmark_figure(points: list[tuple[Model, dict[str, float]]], out: Path) -> Path:
    """Accuracy per category against total parameters (log x), one panel per category."""
    present = {c for _, cats in points for c in cats}
    categories = [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))
    fig, axes = _new_figure(len(categories))
    for ax, category in zip(axes, categories):
        scored = [(m, cats[category]) for m, cats in points if category in cats]
        for i, (name, items) in enumerate(_series(scored, lambda p: p[0])):
            ax.plot([m.total for m, _ in items], [s for _, s in items], label=name, **_style(i, name))
            for m, s in items:
                _annotate(ax, m, m.total, s)
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        ax.set_title(category.replace("_", " "))
        ax.set_xlabel("total parameters")
        ax.set_ylabel("average accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Benchmarks vs total parameters")
    return _save(fig, out)


def capacity_figure(capacities: list[Capacity], out: Path) -> Path:
    """Phone-book capacity against total and against active parameters (log-log). A model that passed every book
    is drawn as an upward triangle at the largest one (a lower bound), one that failed every book as a downward
    triangle at the smallest (an upper bound)."""
    from matplotlib.lines import Line2D

    thresholds = {c.threshold for c in capacities}
    criterion = f">= {100 * thresholds.pop():g}%" if len(thresholds) == 1 else "at each run's threshold"
    fig, axes = _new_figure(2)
    for ax, (attr, xlabel) in zip(axes, (("total", "total parameters"), ("active", "active parameters"))):
        for i, (name, items) in enumerate(_series(capacities, lambda c: c.model)):
            style = _style(i, name)
            ys = [c.capacity if c.bound != "below" else c.smallest for c in items]
            xs = [getattr(c.model, attr) for c in items]
            ax.plot(xs, ys, label=name, **{**style, "marker": None})
            for c, x, y in zip(items, xs, ys):
                marker = {"exact": style["marker"], "at_least": "^", "below": "v"}[c.bound]
                ax.plot(
                    [x],
                    [y],
                    marker=marker,
                    color=style["color"],
                    linestyle="none",
                    markerfacecolor=style["color"] if c.bound == "exact" else "none",
                )
                _annotate(ax, c.model, x, y)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_axis(ax.xaxis)
        _log_axis(ax.yaxis)
        # Capacities are rungs of a ladder (often powers of two, off the 1-2-5 ticks): tick exactly those.
        rungs = sorted({c.capacity if c.bound != "below" else c.smallest for c in capacities})
        ax.set_yticks(rungs, [f"{r:,}" for r in rungs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"largest book memorized ({criterion})")
        ax.grid(alpha=0.3, which="both")
        handles, _ = ax.get_legend_handles_labels()
        bounds = {c.bound for c in capacities}
        if "at_least" in bounds:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="^",
                    color="gray",
                    markerfacecolor="none",
                    linestyle="none",
                    label="passed every book tried (lower bound)",
                )
            )
        if "below" in bounds:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="v",
                    color="gray",
                    markerfacecolor="none",
                    linestyle="none",
                    label="failed the smallest book (upper bound)",
                )
            )
        ax.legend(handles=handles, fontsize=8)
    fig.suptitle("Phone-book capacity: memorization tracks total parameters?")
    return _save(fig, out)


def shortest_path_figure(points: list[tuple[Model, float]], out: Path) -> Path:
    """Shortest-path accuracy against width (log2 x), one line per expert count, dense included."""
    from matplotlib.ticker import NullLocator

    fig, axes = _new_figure(1, width=6.0)
    ax = axes[0]
    for i, experts in enumerate(sorted({m.num_experts for m, _ in points})):
        items = sorted(((m, a) for m, a in points if m.num_experts == experts), key=lambda p: p[0].d_model)
        name = "dense" if experts == 1 else f"MoE E={experts}"
        ax.plot([m.d_model for m, _ in items], [a for _, a in items], label=name, **_style(i, name))
    ax.set_xscale("log", base=2)
    widths = sorted({m.d_model for m, _ in points})
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("width d (log2)")
    ax.set_ylabel("valid shortest paths (accuracy)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Shortest path: reasoning tracks width?")
    return _save(fig, out)


def plot_files(files: list[Path], out_dir: Path) -> list[Path]:
    """Every figure the files can feed, written under out_dir; returns the PNG paths."""
    inputs = read_inputs(files)
    written = []
    if inputs.benchmarks:
        written.append(benchmark_figure(inputs.benchmarks, Path(out_dir) / BENCHMARKS_PNG))
    if inputs.capacities:
        written.append(capacity_figure(inputs.capacities, Path(out_dir) / CAPACITY_PNG))
    if inputs.paths:
        written.append(shortest_path_figure(inputs.paths, Path(out_dir) / SHORTEST_PATH_PNG))
    if inputs.pretrain:
        from ds_parrots_eval.plot_pretrain import pretrain_figures

        written += pretrain_figures(inputs.pretrain, inputs.pretrain_labels, Path(out_dir))
    if not written:
        raise ConfigError(f"no figure to draw: the {len(files)} file(s) hold no model (an empty summary?)")
    return written


@dataclass
class PlotArgs:
    """Draw the paper's figures as PNG files from result JSON files: benchmarks.png (benchmark accuracy per
    category vs total parameters), phonebook_capacity.png (largest book memorized vs total and active
    parameters), shortest_path.png (accuracy vs width per expert count), pretrain_{knowledge,math,gap}.png (a
    `reproduce pretrain` summary: knowledge, math test accuracy and the train - test gap vs total parameters and
    width). Each is drawn when some file feeds it."""

    files: Annotated[list[Path], tyro.conf.Positional]
    """Result files: benchmark results ("kind": "benchmarks"), summaries of `ds-parrots reproduce`
    (summary.json), or training runs' results.json (phonebook, shortest-path)."""
    out: Path = Path("figs")
    """Folder the PNG files are written to (created if missing)."""


def main(argv: list[str]) -> int:
    args = tyro.cli(
        PlotArgs, args=argv, prog="ds-parrots-eval plot", description=inspect.cleandoc(PlotArgs.__doc__)
    )
    for path in plot_files(args.files, args.out):
        print(f"wrote {path}")
    return 0


# Readers of the result files live in plot_inputs.py; kept importable from here for callers.
from ds_parrots_eval.plot_inputs import capacity_from_runs, phonebook_passed  # noqa: E402, F401
