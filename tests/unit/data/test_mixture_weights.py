"""Mixture weights: finite and > 0, normalized without overflow, and kept bit for bit where the sum is fine (the
sample order depends on them)."""

import numpy as np
import pytest

from ds_parrots.data.mixture import load_mixture
from ds_parrots.data.sampler import PretrainSamples
from ds_parrots.errors import ConfigError


def mixture(tmp_path, *weights):
    """Mixture JSON text with these weights written verbatim (Infinity, NaN, 1e999 are JSON to Python)."""
    sources = ", ".join(f'{{"name": "s{i}", "path": "s{i}", "weight": {w}}}' for i, w in enumerate(weights))
    path = tmp_path / "mix.json"
    path.write_text(f'{{"name": "m", "sources": [{sources}]}}')
    return str(path)


def test_weights_whose_sum_overflows_are_normalized_and_every_source_is_drawn(tmp_path):
    mix = load_mixture(mixture(tmp_path, "1e308", "1e308"))
    assert mix.weights == [0.5, 0.5]
    streams = [np.arange(4001, dtype=np.int64), np.arange(4001, dtype=np.int64) + 100_000]
    samples = PretrainSamples(["s0", "s1"], streams, [s.weight for s in mix.sources], 8, 0, 0)
    drawn = samples.draws(1000)
    assert drawn.tolist() == [500, 500]
    rows = samples.read(np.arange(100))
    assert (rows[:, 0] >= 100_000).sum() == 50  # half the samples really come from the second file


def test_weights_that_sum_fine_are_kept_exactly(tmp_path):
    mix = load_mixture(mixture(tmp_path, 3, 1, "0.1"))
    assert [s.weight for s in mix.sources] == [3.0, 1.0, 0.1]
    assert mix.weights == [3.0 / 4.1, 1.0 / 4.1, 0.1 / 4.1]


@pytest.mark.parametrize(
    "weight,shown",
    [
        ("Infinity", "inf"),
        ("-Infinity", "-inf"),
        ("NaN", "nan"),
        ("1e999", "inf"),  # a JSON float past float's range reads as infinity
        ("1" + "0" * 400, "(401 characters)"),  # an int float() overflows on, shown shortened
        ("0", "0"),
        ("-1", "-1"),
        ("true", "True"),
        ('"half"', "'half'"),
        ("null", "None"),
    ],
)
def test_weights_that_are_not_finite_numbers_above_zero_are_refused(tmp_path, weight, shown):
    with pytest.raises(ConfigError, match="finite numbers > 0") as e:
        load_mixture(mixture(tmp_path, 1, weight))
    message = str(e.value)
    assert "source 's1' has weight " in message and shown in message.split("has weight ")[1].split(";")[0]
    assert "\n" not in message


def test_a_weight_too_small_to_be_any_share_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'s1' has weight 1e-300, too small next to the largest"):
        load_mixture(mixture(tmp_path, "1e300", "1e-300"))


def test_a_mixture_file_that_is_not_text_is_refused_in_one_line(tmp_path):
    path = tmp_path / "mix.json"
    path.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_mixture(str(path))
