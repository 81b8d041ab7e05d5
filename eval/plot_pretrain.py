"""The figures of `ds-parrots reproduce pretrain`, from its summary.json: one per finding, drawn like the other
reproduce figures (one line joining the dense models, one per MoE width joining its expert counts; dense as black
squares on a dashed line, MoEs as colored circles, each point labelled).

- pretrain_knowledge.png: knowledge accuracy against total and against active parameters;
- pretrain_math.png: math test accuracy against total parameters and against width;
- pretrain_gap.png: math train and test accuracy, and their gap, against total parameters.
"""

from __future__ import annotations

from pathlib import Path

from ds_parrots_eval.plot_inputs import Model

KNOWLEDGE_PNG, MATH_PNG, GAP_PNG = "pretrain_knowledge.png", "pretrain_math.png", "pretrain_gap.png"


def _panel(ax, points: list[tuple[Model, dict]], key: str, x: str, ylabel: str) -> None:
    """One score against total / active parameters (log x) or width (log2 x), the paper's series."""
    from matplotlib.ticker import NullLocator

    from ds_parrots_eval.plot import _annotate, _log_axis, _series, _style

    scored = [(m, s[key]) for m, s in points if key in s]
    position = {"total": lambda m: m.total, "active": lambda m: m.active, "width": lambda m: m.d_model}[x]
    for i, (name, items) in enumerate(_series(scored, lambda p: p[0])):
        if x == "width":  # the MoEs of one width stack at one x: order each line by width, then experts
            items = sorted(items, key=lambda p: (p[0].d_model, p[0].num_experts))
        ax.plot([position(m) for m, _ in items], [s for _, s in items], label=name, **_style(i, name))
        for m, s in items:
            _annotate(ax, m, position(m), s)
    if x == "width":
        ax.set_xscale("log", base=2)
        widths = sorted({m.d_model for m, _ in scored})
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("width d (log2)")
    else:
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        ax.set_xlabel(f"{x} parameters")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if scored:
        ax.legend(fontsize=8)


def _short(labels: dict, key: str) -> str:
    return labels.get(key, key).replace(" (", "\n(")


def pretrain_figures(points: list[tuple[Model, dict]], labels: dict, out_dir: Path) -> list[Path]:
    """The three figures under out_dir; a score no model has leaves its panel empty (the table says why)."""
    from ds_parrots_eval.plot import _new_figure, _save

    written = []
    fig, axes = _new_figure(2)
    for ax, x in zip(axes, ("total", "active")):
        _panel(ax, points, "knowledge", x, _short(labels, "knowledge"))
    fig.suptitle("Memorization: knowledge accuracy tracks total parameters?")
    written.append(_save(fig, Path(out_dir) / KNOWLEDGE_PNG))

    fig, axes = _new_figure(2)
    for ax, x in zip(axes, ("total", "width")):
        _panel(ax, points, "math_test", x, _short(labels, "math_test"))
    fig.suptitle("Reasoning: math test accuracy tracks width, MoE below dense of equal total?")
    written.append(_save(fig, Path(out_dir) / MATH_PNG))

    fig, axes = _new_figure(2)
    _panel(axes[0], points, "math_train", "total", _short(labels, "math_train"))
    _panel(axes[1], points, "math_gap", "total", _short(labels, "math_gap"))
    axes[1].axhline(0.0, color="gray", linewidth=0.8)
    fig.suptitle("Generalization: MoEs' train - test gap on math larger than dense?")
    written.append(_save(fig, Path(out_dir) / GAP_PNG))
    return written
