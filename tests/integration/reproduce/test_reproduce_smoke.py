"""`ds-parrots reproduce`: the smoke scale goes from grid to summary, table and figure with real training runs;
a rerun trains nothing, a rerun under other settings is refused, a crashed run is recorded and the grid goes on."""

import json

import pytest

from ds_parrots.cli.reproduce import main
from ds_parrots.errors import ConfigError

pytestmark = [pytest.mark.slow]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LADDER = (100, 200, 400, 800, 1600, 3200, 6400)


def test_phonebook_smoke_end_to_end_then_rerun_skips(tmp_path, capsys):
    argv = ["phonebook", "--scale", "smoke", "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    root = tmp_path / "phonebook-smoke"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["kind"] == "phonebook_capacity" and summary["ladder"] == [20, 40, 80]
    assert [m["name"] for m in summary["models"]] == ["d16-dense", "d16-e4"]
    for m in summary["models"]:
        assert m["params"]["total"] > 0 and m["bound"] in ("exact", "at_least", "below")
        assert 1 <= len(m["probes"]) <= 2 and m["probes"][0]["book_size"] == 40  # bisection starts mid-ladder
        for p in m["probes"]:
            assert p["status"] == "trained" and p["seconds"] > 0 and 0 <= p["exact_match"] <= 1
            assert (root / p["run"] / "results.json").is_file() and (
                root / "logs" / f"{p['run']}.log"
            ).is_file()
            assert f"book {p['book_size']}: exact match" in out
    moe, dense = summary["models"][1], summary["models"][0]
    assert (
        moe["params"]["total"] > moe["params"]["active"]
        and dense["params"]["total"] == dense["params"]["active"]
    )
    table = (root / "table.md").read_text()
    assert "| d16-dense |" in table and "| d16-e4 |" in table
    png = (root / "phonebook_capacity.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 5_000

    assert main(argv) == 0
    rerun = json.loads((root / "summary.json").read_text())
    assert "done before" in capsys.readouterr().out
    for before, after in zip(summary["models"], rerun["models"]):
        assert (after["capacity"], after["bound"]) == (before["capacity"], before["bound"])
        assert {p["status"] for p in after["probes"]} == {"done before"}
        # the wall time of the first invocation is carried over from its summary
        assert [p["seconds"] for p in after["probes"]] == [p["seconds"] for p in before["probes"]]

    # Other settings under the same names: refused before training, not reported as the old runs' results.
    with pytest.raises(
        ConfigError,
        match=r"phonebook-n\d+-d16-dense-s0 holds a finished run of other settings "
        r"\(train.steps: \d+ there, \d+ now\)",
    ):
        main(argv + ["--epochs", "4"])


def test_a_crashed_probe_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    # --train.resume parses (so planning accepts it) but every run refuses it: there is no checkpoint to resume.
    assert (
        main(["phonebook", "--scale", "smoke", "--out-dir", str(tmp_path), "--extra", "--train.resume"]) == 1
    )
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "phonebook-smoke" / "summary.json").read_text())
    assert [m["bound"] for m in summary["models"]] == ["error", "error"]  # the second model was still tried
    for m in summary["models"]:
        (probe,) = m["probes"]
        assert probe["status"] == "failed" and probe["log"] in out
    assert "failed to run" in (tmp_path / "phonebook-smoke" / "table.md").read_text()
