"""Token files that are not what they seem: index paths that are directories or symlinks, and ids that are
negative (a signed dtype that wrapped) or past the model's vocabulary, before launch and batch by batch."""

import os

import numpy as np
import pytest

from ds_parrots.data.file_checks import check_token_ids
from ds_parrots.data.indexed import IndexedDataset, IndexedWriter
from ds_parrots.data.sampler import PretrainSamples
from ds_parrots.errors import ConfigError, DataError
from ds_parrots.training.recipes.pretrain import CheckedBatches

INT16_CODE_AT = 17  # the dtype byte of the .idx header (data/indexed.py HEADER)


def write(prefix, docs, dtype=np.uint16):
    with IndexedWriter(prefix, np.dtype(dtype)) as w:
        for d in docs:
            w.add_document(np.array(d, dtype=np.int64))
    return prefix


def relabel_as_int16(prefix):
    """The same bytes, read as int16: uint16 ids past 32767 come back negative."""
    idx = f"{prefix}.idx"
    raw = bytearray(open(idx, "rb").read())
    raw[INT16_CODE_AT] = 3
    open(idx, "wb").write(bytes(raw))


@pytest.mark.parametrize(
    "make,cause",
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.symlink_to(p.name), "is a symlink loop"),
        (lambda p: p.symlink_to("elsewhere.idx"), "is a symlink to 'elsewhere.idx', which does not exist"),
        (lambda p: os.mkfifo(p), "is not a regular file"),
    ],
)
def test_an_index_path_that_is_not_a_file_names_its_cause(tmp_path, make, cause):
    prefix = write(tmp_path / "a", [[1, 2, 3]])
    idx = tmp_path / "a.idx"
    idx.unlink()
    make(idx)
    with pytest.raises(DataError, match=f"token index '{idx}' {cause}"):
        IndexedDataset(prefix)


def test_a_bin_path_that_is_a_directory_names_its_cause(tmp_path):
    prefix = write(tmp_path / "a", [[1, 2, 3]])
    (tmp_path / "a.bin").unlink()
    (tmp_path / "a.bin").mkdir()
    with pytest.raises(DataError, match="token file .*a.bin' is a directory"):
        IndexedDataset(prefix)


def test_a_missing_index_still_says_it_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        IndexedDataset(tmp_path / "nope")


def test_wrapped_int16_ids_are_refused_before_launch_naming_the_file(tmp_path):
    prefix = write(tmp_path / "a", [[5, 6], [7, 40000, 8]])
    relabel_as_int16(prefix)
    ds = IndexedDataset(prefix)
    assert int(ds.tokens.min()) == 40000 - 65536  # the wrap the check exists for
    with pytest.raises(
        DataError, match=r"a.bin' holds token id -25536 \(the first negative one at token 3\)"
    ):
        check_token_ids(ds.bin_path, ds.tokens, vocab_size=50000)


def test_ids_past_the_vocabulary_are_refused_before_launch(tmp_path):
    ds = IndexedDataset(write(tmp_path / "a", [[5, 6, 99]]))
    check_token_ids(ds.bin_path, ds.tokens, vocab_size=100)
    with pytest.raises(DataError, match="holds token id 99, which is >= --model.vocab-size=99"):
        check_token_ids(ds.bin_path, ds.tokens, vocab_size=99)


def test_only_the_prefix_is_scanned_before_launch_and_batches_catch_the_rest(tmp_path):
    tokens = np.arange(64, dtype=np.int16)
    tokens[40] = -7
    check_token_ids(tmp_path / "a.bin", tokens, vocab_size=100, scan=32)  # -7 lies past the scanned prefix
    samples = PretrainSamples(["a"], [tokens], [1.0], 7, 0, 0)
    batches = CheckedBatches(samples, 9, 9, 1, 0, vocab_size=100)  # 9 slots of 8 tokens: the whole stream
    with pytest.raises(ConfigError, match="token id -7 at step 0 is negative"):
        batches.step_batches(0)


def test_batches_of_good_ids_pass(tmp_path):
    samples = PretrainSamples(["a"], [np.arange(64, dtype=np.int16)], [1.0], 7, 0, 0)
    ((x, y),) = CheckedBatches(samples, 9, 9, 1, 0, vocab_size=64).step_batches(0)
    assert int(x.min()) >= 0 and int(y.max()) <= 63
