"""Pre-training samples: keyed permutations, mixture blending, train/validation split, rank shards."""

import json

import numpy as np
import pytest

from ds_parrots.data.mixture import load_mixture
from ds_parrots.data.permutation import permute
from ds_parrots.data.sampler import Blend, PretrainBatches, PretrainSamples, apportion
from ds_parrots.errors import ConfigError

SEQ = 8


def stream(n_tokens: int, base: int) -> np.ndarray:
    # Distinct ids per position, so a slot's content identifies its source and slot.
    return (base + np.arange(n_tokens)).astype(np.int64)


def two_sources(weights=(0.75, 0.25), val=10, seed=0) -> PretrainSamples:
    return PretrainSamples(
        ["a", "b"], [stream(8001, 0), stream(4001, 1_000_000)], list(weights), SEQ, seed, val
    )


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permutation_is_a_bijection(n):
    out = permute(np.arange(n), n, key=12345)
    assert sorted(out.tolist()) == list(range(n))


def test_permutation_depends_on_key_and_nothing_else():
    a, b = permute(np.arange(500), 500, 1), permute(np.arange(500), 500, 2)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, permute(np.arange(500), 500, 1))
    # Any index alone gives what it gives inside the array: no state.
    assert permute(137, 500, 1) == a[137]


def test_samples_are_a_pure_function_of_index_and_seed():
    ids = np.array([5, 0, 99, 12345])
    np.testing.assert_array_equal(two_sources().read(ids), two_sources().read(ids))
    assert not np.array_equal(two_sources(seed=0).read(ids), two_sources(seed=1).read(ids))


def test_samples_are_contiguous_windows_of_one_source():
    rows = two_sources().read(np.arange(300))
    diffs = np.diff(rows, axis=1)
    assert (diffs == 1).all()  # seq_len + 1 consecutive tokens of one stream
    assert ((rows[:, 0] % 1_000_000) % SEQ == 0).all()  # each starts at a slot boundary of its stream


def test_training_never_reads_a_validation_sequence_and_each_epoch_visits_all():
    samples = two_sources(val=10)
    val = set(samples.validation())
    assert len(val) == 10
    for s, src in enumerate(samples.sources):
        m = src.num_train
        slots = src.train_slots(np.arange(3 * m))
        for e in range(3):
            epoch = slots[e * m : (e + 1) * m].tolist()
            assert sorted(epoch) == sorted(set(range(src.num_slots)) - {sl for t, sl in val if t == s})
        assert not np.array_equal(slots[:m], slots[m : 2 * m])  # a new order each epoch


def test_validation_split_follows_the_weights():
    samples = two_sources(weights=(0.75, 0.25), val=20)
    assert [src.num_val for src in samples.sources] == [15, 5]
    assert apportion(10, [0.5, 0.3, 0.2]) == [5, 3, 2] and sum(apportion(7, [0.4, 0.35, 0.25])) == 7


@pytest.mark.parametrize("weights", [(0.75, 0.25), (0.6, 0.3, 0.1), (0.01, 0.99), (1 / 3, 1 / 3, 1 / 3)])
def test_blend_holds_the_weights_at_every_scale(weights):
    blend = Blend(list(weights), seed=3, block=512)
    source, draw = blend.locate(np.arange(5 * 512 + 100))
    w = np.array(weights) / sum(weights)
    for n in (64, 512, 1000, 2660):
        counts = np.bincount(source[:n], minlength=len(w))
        assert np.abs(counts - n * w).max() <= len(w), (n, counts, n * w)
    # Any window, e.g. one micro-batch of 16, holds each source within 2 of its share.
    for start in range(0, 2000, 16):
        counts = np.bincount(source[start : start + 16], minlength=len(w))
        assert np.abs(counts - 16 * w).max() <= 2
    # The k-th draw of each source appears once, in order.
    for s in range(len(w)):
        np.testing.assert_array_equal(draw[source == s], np.arange((source == s).sum()))


def test_draws_count_what_the_blend_assigns():
    samples = two_sources()
    for n in (0, 1, 777, 5000, 9000):
        source, _ = samples.blend.locate(np.arange(n))
        np.testing.assert_array_equal(samples.draws(n), np.bincount(source, minlength=2))


def test_ranks_read_disjoint_shards_that_cover_each_step():
    samples = two_sources()
    ranks = [PretrainBatches(samples, global_batch=8, micro_batch=2, world_size=2, rank=r) for r in range(2)]
    assert ranks[0].accumulation == 2
    for step in range(4):
        ids = [i for b in ranks for m in range(b.accumulation) for i in b.sample_ids(step, m).tolist()]
        assert sorted(ids) == list(range(step * 8, step * 8 + 8))
    x0, _ = ranks[0].step_batches(1)[0]
    x1, _ = ranks[1].step_batches(1)[0]
    assert not set(x0[:, 0].tolist()) & set(x1[:, 0].tolist())


def test_resume_reads_the_same_batches():
    samples = two_sources()
    run = PretrainBatches(samples, 8, 4, 1, 0)
    seen = [run.step_batches(s) for s in range(6)]
    resumed = PretrainBatches(two_sources(), 8, 4, 1, 0)  # a new process, told only the step
    for s in (4, 5):
        for (xa, ya), (xb, yb) in zip(seen[s], resumed.step_batches(s)):
            assert xa.equal(xb) and ya.equal(yb)


def test_targets_are_inputs_shifted_by_one():
    x, y = PretrainBatches(two_sources(), 4, 4, 1, 0).step_batches(0)[0]
    assert x.shape == y.shape == (4, SEQ)
    assert x[:, 1:].equal(y[:, :-1])


def test_epochs_are_reported_per_source():
    samples = two_sources(weights=(0.5, 0.5), val=0)
    n = 2 * samples.sources[1].num_train  # source b is the smaller one: one full pass
    epochs = samples.epochs(n)
    assert epochs["b"] == pytest.approx(1.0, abs=1e-3)
    assert epochs["a"] == pytest.approx(samples.sources[1].num_train / samples.sources[0].num_train, abs=1e-3)


def test_a_source_too_small_for_its_validation_share_is_an_error():
    with pytest.raises(ConfigError, match="source 'b'.*validation"):
        PretrainSamples(["a", "b"], [stream(8001, 0), stream(40, 10**6)], [0.5, 0.5], SEQ, 0, 20)


@pytest.mark.parametrize(
    "sources,message",
    [
        ([{"path": "x", "weight": 0}], "weights must be finite numbers > 0"),
        ([{"path": "x", "weight": -1}], "weights must be finite numbers > 0"),
        ([{"path": "x", "weight": "a lot"}], "weights must be finite numbers > 0"),
        ([{"weight": 1}], "needs a 'path'"),
        ([], "non-empty 'sources'"),
        ([{"path": "x", "name": "n"}, {"path": "y", "name": "n"}], "appears twice"),
    ],
)
def test_bad_mixture_files_name_the_problem(tmp_path, sources, message):
    f = tmp_path / "mix.json"
    f.write_text(json.dumps({"sources": sources}))
    with pytest.raises(ConfigError, match=message) as e:
        load_mixture(str(f))
    assert str(f) in str(e.value)


def test_mixture_paths_resolve_against_the_data_root_and_shipped_names_load(tmp_path):
    f = tmp_path / "mix.json"
    f.write_text(
        json.dumps({"sources": [{"path": "data/x.bin", "weight": 2}, {"path": "/abs/y", "weight": 6}]})
    )
    m = load_mixture(str(f), data_root="/root/of/data")
    assert [str(s.path) for s in m.sources] == ["/root/of/data/data/x", "/abs/y"]
    assert m.weights == [0.25, 0.75]
    assert {s.name for s in load_mixture("math").sources} == {
        "proof_pile_2",
        "open_math_instruct",
        "metamathqa",
    }
    with pytest.raises(ConfigError, match="shipped mixtures: math, natural_language"):
        load_mixture("no_such_mixture")
