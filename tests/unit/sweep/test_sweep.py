"""`ds-parrots sweep` without training: the grids expand into the paper's runs, every command parses with
train.py's own parser, the manifest and configs say what the runs will do. --run, the emitted SLURM jobs and
bad input on the command line are in tests/integration/sweep/test_sweep_runs.py."""

import json
import shlex

import pytest

from ds_parrots.cli.sweep import main
from ds_parrots.cli.train import PhonebookRun, PretrainRun, ShortestPathRun, parse
from ds_parrots.sweep.plan import plan

SUBCOMMAND_TYPES = {"phonebook": PhonebookRun, "shortest-path": ShortestPathRun, "pretrain": PretrainRun}


@pytest.fixture(scope="module")
def grids():
    names = ("synthetic-phonebook", "synthetic-shortest-path", "pretrain-natural", "pretrain-math", "smoke")
    return {name: plan(name, (), "", 1, None, None) for name in names}


def train_args(command: str) -> list[str]:
    """The arguments after ds_parrots/train.py, whatever launches it."""
    words = shlex.split(command)
    return words[next(i for i, w in enumerate(words) if w.endswith("train.py")) + 1 :]


def test_grid_sizes_match_the_paper(grids):
    sizes = {name: len(runs) for name, runs in grids.items()}
    assert sizes == {
        "synthetic-phonebook": 3 * 5 * 7,
        "synthetic-shortest-path": 3 * 5,
        "pretrain-natural": 5 + 12,
        "pretrain-math": 5 + 12,
        "smoke": 4,
    }
    for runs in grids.values():
        assert len({r.name for r in runs}) == len(runs)  # side by side in one directory: names must differ
    books = {r.keys["book_size"] for r in grids["synthetic-phonebook"]}
    assert books == {100_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000}


@pytest.mark.parametrize(
    "grid,fixed",
    [("synthetic-phonebook", {"book_size": 100_000}), ("synthetic-shortest-path", {}), ("pretrain-math", {})],
)
def test_parameters_grow_with_width_and_experts(grids, grid, fixed):
    runs = [r for r in grids[grid] if all(r.keys[k] == v for k, v in fixed.items())]
    table = {(r.keys["width"], r.keys["experts"]): r.params for r in runs}
    for experts in {e for _, e in table}:
        by_width = [table[w, experts]["total"] for w in sorted(w for w, e in table if e == experts)]
        assert by_width == sorted(by_width) and len(set(by_width)) == len(by_width)
    for width in {w for w, _ in table}:
        experts = sorted(e for w, e in table if w == width)
        totals = [table[width, e]["total"] for e in experts]
        assert totals == sorted(totals) and len(set(totals)) == len(totals)
        moe_active = [table[width, e]["active"] for e in experts if e > 1]
        if moe_active:  # the pre-training grid's widest models are dense only
            # top-2 of any number of experts: only the router grows with E
            assert max(moe_active) < 1.05 * min(moe_active)
            assert table[width, 1]["active"] < min(moe_active)  # dense FFN = one expert; the MoE uses two


def test_synthetic_sizes_use_the_task_vocabulary(grids):
    # Phone-book: 67 characters; the counts must not be those of the 32k vocabulary the presets default to.
    run = next(r for r in grids["synthetic-phonebook"] if r.name == "phonebook-n100000-d256-dense")
    body = run.params["total"] - 2 * 67 * 256
    pretrain = next(r for r in grids["pretrain-math"] if r.name == "pretrain-math-d256-dense")
    assert pretrain.params["total"] - 2 * 32000 * 256 == pytest.approx(body * 20 / 12, rel=1e-3)


def test_every_command_parses_with_the_training_cli(grids):
    for grid, runs in grids.items():
        for r in runs:
            launcher = shlex.split(r.command)[:2]
            assert launcher[0] == "python" and launcher[1].endswith("ds_parrots/train.py")
            cfg = parse(train_args(r.command))
            assert type(cfg) is SUBCOMMAND_TYPES[r.subcommand]
            assert cfg.model.d_model == r.keys["width"] and cfg.model.num_experts == r.keys["experts"]
            assert (cfg.train.out_dir, cfg.train.run_name) == (f"runs/{grid}", r.name)
            if "book_size" in r.keys:
                assert cfg.task.book_size == r.keys["book_size"]
    mixtures = {
        parse(train_args(r.command)).data.mixture for r in grids["pretrain-natural"] + grids["pretrain-math"]
    }
    assert mixtures == {"natural_language", "math"}


def test_multi_gpu_commands_use_deepspeed_and_expert_parallelism():
    runs = plan("synthetic-shortest-path", ("width=256",), "--train.micro-batch 8", 8, None, None)
    for r in runs:
        assert shlex.split(r.command)[:3] == ["deepspeed", "--num_gpus", "8"]
        cfg = parse(train_args(r.command))
        assert cfg.train.micro_batch == 8
        assert cfg.moe.ep_size == (min(r.keys["experts"], 8) if r.keys["experts"] > 1 else 1)
        assert r.ds_config["gradient_accumulation_steps"] == cfg.train.global_batch // (8 * 8)
    assert [
        parse(train_args(r.command)).moe.ep_size
        for r in plan("synthetic-shortest-path", ("width=256",), "--train.micro-batch 8", 8, 2, None)
    ] == [1, 2, 2, 2, 2]


def test_dry_run_writes_only_manifest_and_configs(tmp_path, capsys):
    out, runs_dir = tmp_path / "sweep", tmp_path / "runs"
    assert (
        main(
            [
                "synthetic-phonebook",
                "--filter",
                "book_size=1e5",
                "--filter",
                "width=512",
                "--out",
                str(out),
                "--out-dir",
                str(runs_dir),
                "--extra",
                "--train.zero-stage 2 --train.micro-batch 16",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["grid"] == "synthetic-phonebook" and len(manifest["runs"]) == 5
    assert sorted(p.name for p in out.iterdir()) == ["configs", "manifest.json"]
    assert sorted(p.name for p in (out / "configs").iterdir()) == sorted(
        f"{e['name']}.json" for e in manifest["runs"]
    )
    assert not runs_dir.exists()
    for entry in manifest["runs"]:
        assert entry["name"] in printed and entry["command"] in printed
        assert entry["args"] == train_args(entry["command"])
        assert entry["run_dir"] == str(runs_dir / entry["name"])
        assert entry["params"]["total"] >= entry["params"]["active"] > 0
        config = json.loads((out / entry["ds_config"]).read_text())
        assert config["zero_optimization"]["stage"] == 2
        assert config["train_micro_batch_size_per_gpu"] == 16
        assert config["gradient_accumulation_steps"] == 64 // 16
        assert ("expert_parallel" in config) == (entry["keys"]["experts"] > 1)


@pytest.mark.parametrize(
    "filters,expected",
    [
        (["width=256"], 35),
        (["experts=dense,8", "book_size=1e5"], 6),
        (["d512-e64"], 7),
        (["d512-e64", "book-size=3000000"], 1),
    ],
)
def test_filters_select_runs(filters, expected):
    runs = plan("synthetic-phonebook", tuple(filters), "", 1, None, None)
    assert len(runs) == expected
    for f in filters:
        key, _, values = f.partition("=")
        for r in runs:
            if values:
                wanted = {1 if v == "dense" else int(float(v)) for v in values.split(",")}
                assert r.keys[key.replace("-", "_")] in wanted
            else:
                assert f in r.name
