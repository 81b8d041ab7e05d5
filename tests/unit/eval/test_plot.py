"""`ds-parrots-eval plot`: every figure is drawn from small hand-written result files of each kind, and a file it
cannot use is a one-line error naming the file and the missing field."""

import json

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots_eval.plot import (
    BENCHMARKS_PNG,
    CAPACITY_PNG,
    SHORTEST_PATH_PNG,
    Model,
    capacity_from_runs,
    main,
    plot_files,
    read_inputs,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (width, experts, total, active) of a small grid: dense widths 64/128/256, MoEs of width 64 and 128.
GRID = [
    (64, 1, 60_000, 60_000),
    (128, 1, 210_000, 210_000),
    (256, 1, 800_000, 800_000),
    (64, 8, 230_000, 83_000),
    (64, 16, 430_000, 83_000),
    (128, 8, 850_000, 300_000),
]


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is nearly empty"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def model_fields(d, e, total, active) -> dict:
    return {
        "model": {"d_model": d, "num_experts": e, "top_k": 2},
        "params": {"total": total, "active": active},
    }


def benchmark_file(tmp_path, d, e, total, active) -> str:
    score = total / 1e6
    return write(
        tmp_path / f"bench-d{d}-e{e}.json",
        {
            "kind": "benchmarks",
            **model_fields(d, 0 if e == 1 else e, total, active),  # dense written as 0 experts
            "tasks": {"triviaqa": {"category": "world_knowledge", "metric": "em", "score": score}},
            "categories": {"world_knowledge": score, "commonsense": 0.3 + score / 10, "math": 0.02},
        },
    )


def phonebook_run(tmp_path, d, e, total, active, book, accuracy) -> str:
    return write(
        tmp_path / f"pb-n{book}-d{d}-e{e}.json",
        {
            "task": "phonebook",
            "task_config": {"book_size": book, "pass_threshold": 0.9},
            "metrics": {"exact_match": accuracy, "num_queries": 100},
            **model_fields(d, e, total, active),
        },
    )


def capacity_summary(tmp_path) -> str:
    models = [
        {
            "name": f"d{d}-e{e}",
            **model_fields(d, e, total, active),
            "capacity": total // 100,
            "bound": "exact",
        }
        for d, e, total, active in GRID
    ]
    models[0].update(capacity=None, bound="below")
    models[-1].update(capacity=8000, bound="at_least")
    return write(
        tmp_path / "summary.json",
        {
            "kind": "phonebook_capacity",
            "pass_threshold": 0.9,
            "ladder": [500, 1000, 2000, 4000, 8000],
            "models": models,
        },
    )


def test_benchmark_figure_has_one_panel_per_category(tmp_path):
    files = [benchmark_file(tmp_path, *m) for m in GRID]
    (png,) = plot_files(files, tmp_path / "figs")
    assert png.name == BENCHMARKS_PNG
    width, height = png_size(png)
    assert width > 2.5 * height  # three panels side by side
    dense = [m for m, _ in read_inputs(files).benchmarks if not m.is_moe]
    assert len(dense) == 3  # num_experts 0 reads as dense


def test_capacity_figure_from_a_reproduce_summary(tmp_path):
    (png,) = plot_files([capacity_summary(tmp_path)], tmp_path / "figs")
    assert png.name == CAPACITY_PNG
    width, height = png_size(png)
    assert width > 1.5 * height  # total and active panels


def test_capacity_from_training_runs_is_the_largest_book_passed(tmp_path):
    d, e, total, active = GRID[3]
    files = [
        phonebook_run(tmp_path, d, e, total, active, book, acc)
        for book, acc in ((1000, 0.99), (2000, 0.95), (4000, 0.40))
    ]
    files.append(phonebook_run(tmp_path, *GRID[0], 1000, 0.2))
    capacities = {c.model.num_experts: c for c in read_inputs(files).capacities}
    assert (capacities[8].capacity, capacities[8].bound) == (2000, "exact")
    assert capacities[8].model.total == total
    assert (capacities[1].capacity, capacities[1].bound) == (None, "below")
    (png,) = plot_files(files, tmp_path / "figs")
    png_size(png)


def test_capacity_bounds_at_the_ends_of_the_books_tried():
    model = Model(64, 8, 230_000, 83_000)
    assert capacity_from_runs(model, [(100, True), (200, True)], 0.9).bound == "at_least"
    below = capacity_from_runs(model, [(100, False), (200, False)], 0.9)
    assert (below.capacity, below.bound, below.smallest) == (None, "below", 100)


def test_shortest_path_figure_from_summary_and_runs(tmp_path):
    summary = write(
        tmp_path / "sp.json",
        {
            "kind": "shortest_path_accuracy",
            "runs": [
                {**model_fields(d, e, total, active), "accuracy": d / 512} for d, e, total, active in GRID
            ],
        },
    )
    run = write(
        tmp_path / "run.json",
        {
            "task": "shortest-path",
            "metrics": {"valid_shortest": 0.7, "exact_match": 0.6},
            **model_fields(512, 1, 3_000_000, 3_000_000),
        },
    )
    inputs = read_inputs([summary, run])
    assert len(inputs.paths) == len(GRID) + 1
    (png,) = plot_files([summary, run], tmp_path / "figs")
    assert png.name == SHORTEST_PATH_PNG
    png_size(png)


def test_main_draws_every_figure_the_files_feed(tmp_path, capsys):
    files = [
        benchmark_file(tmp_path, *GRID[0]),
        capacity_summary(tmp_path),
        write(
            tmp_path / "run.json",
            {
                "task": "shortest-path",
                "metrics": {"valid_shortest": 0.5},
                **model_fields(64, 8, 230_000, 83_000),
            },
        ),
    ]
    assert main([*files, "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    for name in (BENCHMARKS_PNG, CAPACITY_PNG, SHORTEST_PATH_PNG):
        png_size(tmp_path / "figs" / name)
        assert f"wrote {tmp_path / 'figs' / name}" in out


@pytest.mark.parametrize("drop,field", [("params", "params.total"), ("categories", "categories")])
def test_a_missing_field_is_one_line_naming_file_and_field(tmp_path, drop, field):
    path = tmp_path / "bench.json"
    data = json.loads(open(benchmark_file(tmp_path, *GRID[3])).read())
    if drop == "params":
        del data["params"]["total"]
    else:
        del data["categories"]
    write(path, data)
    with pytest.raises(ConfigError) as err:
        plot_files([str(path)], tmp_path / "figs")
    message = str(err.value)
    assert str(path) in message and f"'{field}'" in message and "\n" not in message


def test_a_file_of_no_known_kind_is_refused(tmp_path):
    path = write(tmp_path / "other.json", {"hello": 1})
    with pytest.raises(ConfigError, match="other.json: missing field 'kind'"):
        plot_files([path], tmp_path / "figs")
    run = write(
        tmp_path / "pb.json",
        {"task": "phonebook", "task_config": {"book_size": 10}, **model_fields(64, 1, 1, 1)},
    )
    with pytest.raises(ConfigError, match=r"pb.json: missing field 'task_config.pass_threshold'"):
        plot_files([run], tmp_path / "figs")
