"""`ds-parrots reproduce` without training: bisection finds the largest passing rung in O(log n) probes, a dry
run prints the grid and writes nothing, the paper scale emits a job for every rung. The smoke scale with real
training runs is in tests/integration/reproduce/test_reproduce_smoke.py."""

import json

import pytest

from ds_parrots.cli.reproduce import main
from ds_parrots.reproduce.bisect import bisect_ladder, max_probes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LADDER = (100, 200, 400, 800, 1600, 3200, 6400)


def probe_counter(capacity):
    """passes(book) for a model that holds every book up to `capacity`, recording what it was asked."""
    asked = []

    def passes(book):
        asked.append(book)
        return book <= capacity

    return passes, asked


@pytest.mark.parametrize("capacity", [150, 200, 450, 800, 3200, 6399])
def test_bisection_finds_the_largest_passing_rung(capacity):
    passes, asked = probe_counter(capacity)
    search = bisect_ladder(LADDER, passes)
    assert search.capacity == max(b for b in LADDER if b <= capacity)
    assert search.bound == "exact"
    assert len(asked) <= max_probes(len(LADDER)) == 3  # ceil(log2(7 + 1))
    assert [b for b, _ in search.probes] == asked and len(set(asked)) == len(asked)


def test_bisection_when_every_rung_passes_or_fails():
    passes, asked = probe_counter(10**9)
    search = bisect_ladder(LADDER, passes)
    assert (search.capacity, search.bound, len(asked)) == (6400, "at_least", 3)
    passes, asked = probe_counter(0)
    search = bisect_ladder(LADDER, passes)
    assert (search.capacity, search.bound, len(asked)) == (None, "below", 3)
    assert asked[-1] == 100  # it went all the way down to the smallest rung


def test_bisection_probes_grow_logarithmically():
    ladder = tuple(range(1, 1001))
    for capacity in (0, 1, 500, 999, 1000):
        passes, asked = probe_counter(capacity)
        assert bisect_ladder(ladder, passes).best == capacity - 1
        assert len(asked) <= max_probes(1000) == 10


def test_bisection_stops_at_a_crashed_probe():
    asked = []

    def passes(book):
        asked.append(book)
        return None if book == 800 else True

    search = bisect_ladder(LADDER, passes)
    assert asked == [800] and search.bound == "error" and search.capacity is None


def test_shortest_path_smoke_dry_run_prints_the_grid_and_writes_nothing(tmp_path, capsys):
    assert main(["shortest-path", "--scale", "smoke", "--out-dir", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "d16-dense" in out and "d16-e4" in out
    commands = [line for line in out.splitlines() if "train.py shortest-path" in line]
    assert len(commands) == 2 and all("--train.steps 10" in c for c in commands)  # 1 epoch of 200 / batch 20
    assert not list(tmp_path.iterdir())


def test_paper_scale_emits_a_job_for_every_rung(tmp_path, capsys):
    assert (
        main(
            [
                "phonebook",
                "--scale",
                "paper",
                "--out-dir",
                str(tmp_path),
                "--emit",
                "slurm",
                "--num-gpus",
                "8",
            ]
        )
        == 0
    )
    jobs = sorted((tmp_path / "phonebook-paper" / "slurm").glob("*.sbatch"))
    assert len(jobs) == 15 * 7  # every (model, book): bisection cannot be submitted ahead
    job = (tmp_path / "phonebook-paper" / "slurm" / "phonebook-n3000000-d1024-e64-s0.sbatch").read_text()
    assert "--moe.ep-size 8" in job and "--train.steps 585938" in job  # 100 epochs x 3e6 / 512
    assert "written by `ds-parrots reproduce phonebook --scale paper --emit slurm`" in job
    manifest = json.loads((tmp_path / "phonebook-paper" / "manifest.json").read_text())
    assert manifest["grid"] == "reproduce-phonebook-paper" and "phone-book" in manifest["description"].lower()
