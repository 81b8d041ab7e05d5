import struct

import numpy as np
import pytest

from ds_parrots.data import indexed
from ds_parrots.data.indexed import IndexedDataset, IndexedWriter, dtype_for_vocab
from ds_parrots.errors import DataError

# The layout as Megatron-LM documents it, restated here so the tests do not share the module's constants.
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_HEADER = "<9sQBQQ"
HEADER_BYTES = 34
MEGATRON_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}


def _docs(seed=0, n=7, high=60000):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, high, size=int(rng.integers(1, 20))) for _ in range(n)]


def _write(prefix, docs, dtype=np.uint16):
    with IndexedWriter(prefix, dtype) as w:
        for d in docs:
            w.add_document(d)
    return prefix


def _patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _megatron_write(prefix, docs, dtype):
    """What Megatron's IndexedDatasetBuilder + _IndexWriter produce for one sequence per document."""
    lengths = np.array([len(d) for d in docs], dtype=np.int32)
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)]) * np.dtype(dtype).itemsize
    document_indices = np.arange(len(docs) + 1, dtype=np.int64)
    with open(f"{prefix}.bin", "wb") as f:
        for d in docs:
            f.write(np.asarray(d, dtype=dtype).tobytes())
    with open(f"{prefix}.idx", "wb") as f:
        f.write(MEGATRON_MAGIC + struct.pack("<Q", 1) + struct.pack("<B", MEGATRON_CODES[np.dtype(dtype)]))
        f.write(struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(document_indices)))
        f.write(lengths.tobytes() + pointers.astype(np.int64).tobytes() + document_indices.tobytes())


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_round_trip_returns_every_document(tmp_path, dtype):
    docs = _docs(high=60000 if dtype == np.uint16 else 2_000_000)
    ds = IndexedDataset(_write(tmp_path / "c", docs, dtype))
    assert ds.dtype == np.dtype(dtype)
    assert len(ds) == ds.num_documents == len(docs)
    assert ds.num_tokens == sum(len(d) for d in docs)
    assert [ds[i].tolist() for i in range(len(ds))] == [d.tolist() for d in docs]
    assert ds.tokens.tolist() == np.concatenate(docs).tolist()


def test_dtype_for_vocab_switches_to_int32_past_65536():
    assert dtype_for_vocab(65536) == np.uint16
    assert dtype_for_vocab(65537) == np.int32


def test_prefix_may_be_given_with_either_suffix(tmp_path):
    _write(tmp_path / "c", _docs())
    for name in ("c", "c.bin", "c.idx"):
        assert IndexedDataset(tmp_path / name).idx_path == tmp_path / "c.idx"


def test_written_files_follow_megatron_layout(tmp_path):
    docs = _docs()
    _write(tmp_path / "c", docs, np.int32)
    raw = (tmp_path / "c.idx").read_bytes()
    magic, version, code, n, d = struct.unpack_from(MEGATRON_HEADER, raw)
    assert (magic, version, code, n, d) == (MEGATRON_MAGIC, 1, 4, len(docs), len(docs) + 1)
    lengths = np.frombuffer(raw, np.int32, n, HEADER_BYTES)
    pointers = np.frombuffer(raw, np.int64, n, HEADER_BYTES + 4 * n)
    document_indices = np.frombuffer(raw, np.int64, d, HEADER_BYTES + 12 * n)
    assert len(raw) == HEADER_BYTES + 12 * n + 8 * d
    assert lengths.tolist() == [len(x) for x in docs]
    assert document_indices.tolist() == list(range(len(docs) + 1))
    tokens = np.fromfile(tmp_path / "c.bin", dtype=np.int32)
    for i, doc in enumerate(docs):
        start = pointers[i] // 4
        assert tokens[start : start + lengths[i]].tolist() == doc.tolist()


def test_reads_files_written_like_megatron(tmp_path):
    docs = _docs(seed=1)
    _megatron_write(tmp_path / "m", docs, np.uint16)
    ds = IndexedDataset(tmp_path / "m")
    assert ds.dtype == np.uint16
    assert [ds[i].tolist() for i in range(len(ds))] == [d.tolist() for d in docs]
    assert ds.document_indices.tolist() == list(range(len(docs) + 1))


def test_append_raw_equals_add_document(tmp_path):
    docs = _docs(seed=2, n=9)
    _write(tmp_path / "whole", docs)
    parts = [docs[:4], docs[4:]]
    with IndexedWriter(tmp_path / "joined", np.uint16) as w:
        for k, part in enumerate(parts):
            raw = tmp_path / f"part{k}.raw"
            raw.write_bytes(np.concatenate(part).astype(np.uint16).tobytes())
            w.append_raw(raw, np.array([len(d) for d in part]))
    assert (tmp_path / "joined.bin").read_bytes() == (tmp_path / "whole.bin").read_bytes()
    assert (tmp_path / "joined.idx").read_bytes() == (tmp_path / "whole.idx").read_bytes()


def test_append_raw_rejects_a_part_whose_size_disagrees(tmp_path):
    raw = tmp_path / "part.raw"
    raw.write_bytes(np.arange(10, dtype=np.uint16).tobytes())
    with pytest.raises(DataError, match="part.raw"):
        with IndexedWriter(tmp_path / "c", np.uint16) as w:
            w.append_raw(raw, np.array([4, 5]))


def test_pointers_carry_across_chunks(tmp_path, monkeypatch):
    # With 3-sequence chunks, 10 documents cross several chunk boundaries in the writer and the check.
    monkeypatch.setattr(indexed, "CHUNK", 3)
    docs = _docs(seed=3, n=10)
    ds = IndexedDataset(_write(tmp_path / "c", docs))
    assert [ds[i].tolist() for i in range(len(ds))] == [d.tolist() for d in docs]


def test_pointer_break_at_a_chunk_boundary_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(indexed, "CHUNK", 3)
    docs = [np.arange(1, 3)] * 10
    _write(tmp_path / "c", docs)
    # Swap the lengths of sequences 2 and 3 (2 ends chunk 0): the total stays, only the step 2 -> 3 breaks.
    _patch(tmp_path / "c.idx", HEADER_BYTES + 4 * 2, struct.pack("<ii", 1, 3))
    with pytest.raises(
        DataError, match=r"c\.idx.*sequence 3 starts at byte 12 but sequence 2 ends at byte 10"
    ):
        IndexedDataset(tmp_path / "c")


def test_non_contiguous_pointers_raise(tmp_path):
    docs = _docs(seed=4)
    _write(tmp_path / "c", docs)
    n = len(docs)
    _patch(tmp_path / "c.idx", HEADER_BYTES + 4 * n + 8 * 2, struct.pack("<q", 1))
    with pytest.raises(DataError, match=r"c\.idx.*not contiguous"):
        IndexedDataset(tmp_path / "c")


def test_verify_false_skips_the_pointer_check(tmp_path):
    docs = _docs(seed=4)
    _write(tmp_path / "c", docs)
    _patch(tmp_path / "c.idx", HEADER_BYTES + 4 * len(docs) + 8 * 2, struct.pack("<q", 2))
    assert len(IndexedDataset(tmp_path / "c", verify=False)) == len(docs)


def test_missing_idx_points_at_interrupted_prepare(tmp_path):
    (tmp_path / "c.idx.tmp").write_bytes(b"")
    (tmp_path / "c.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"c\.idx.*\.tmp.*never read"):
        IndexedDataset(tmp_path / "c")


def test_missing_bin_raises(tmp_path):
    _write(tmp_path / "c", _docs())
    (tmp_path / "c.bin").unlink()
    with pytest.raises(DataError, match=r"c\.bin.*does not exist"):
        IndexedDataset(tmp_path / "c")


def test_truncated_bin_raises(tmp_path):
    _write(tmp_path / "c", _docs())
    data = (tmp_path / "c.bin").read_bytes()
    (tmp_path / "c.bin").write_bytes(data[:-2])
    with pytest.raises(DataError, match=r"c\.bin.*truncated"):
        IndexedDataset(tmp_path / "c")


def test_truncated_idx_raises(tmp_path):
    _write(tmp_path / "c", _docs())
    data = (tmp_path / "c.idx").read_bytes()
    (tmp_path / "c.idx").write_bytes(data[:-8])
    with pytest.raises(DataError, match=r"c\.idx.*truncated"):
        IndexedDataset(tmp_path / "c")


def test_idx_cut_inside_header_is_truncated_not_foreign(tmp_path):
    _write(tmp_path / "c", _docs())
    (tmp_path / "c.idx").write_bytes(MEGATRON_MAGIC[:5])
    with pytest.raises(DataError, match=r"c\.idx.*truncated"):
        IndexedDataset(tmp_path / "c")


def test_wrong_magic_shows_the_bytes(tmp_path):
    _write(tmp_path / "c", _docs())
    _patch(tmp_path / "c.idx", 0, b"TNTIDX\x00\x00\x00")
    with pytest.raises(DataError, match=r"c\.idx.*bad magic b'TNTIDX"):
        IndexedDataset(tmp_path / "c")


def test_wrong_version_raises(tmp_path):
    _write(tmp_path / "c", _docs())
    _patch(tmp_path / "c.idx", 9, struct.pack("<Q", 2))
    with pytest.raises(DataError, match=r"c\.idx.*version 2"):
        IndexedDataset(tmp_path / "c")


def test_unknown_dtype_code_raises(tmp_path):
    _write(tmp_path / "c", _docs())
    _patch(tmp_path / "c.idx", 17, struct.pack("<B", 9))
    with pytest.raises(DataError, match=r"c\.idx.*dtype code 9"):
        IndexedDataset(tmp_path / "c")


def test_check_vocab_rejects_a_dtype_too_small(tmp_path):
    ds = IndexedDataset(_write(tmp_path / "c", _docs()))
    ds.check_vocab(65536)
    with pytest.raises(DataError, match=r"c\.bin.*uint16.*100000"):
        ds.check_vocab(100000)


def test_empty_document_is_rejected(tmp_path):
    with IndexedWriter(tmp_path / "c", np.uint16) as w:
        with pytest.raises(DataError, match=r"document 1 for '.*c\.bin' is empty"):
            w.add_document(np.array([5]))
            w.add_document(np.array([], dtype=np.int64))


@pytest.mark.parametrize("bad", [[1, 65536], [-1, 3]])
def test_ids_outside_the_dtype_are_rejected(tmp_path, bad):
    with IndexedWriter(tmp_path / "c", np.uint16) as w:
        with pytest.raises(DataError, match=r"c\.bin.*outside uint16"):
            w.add_document(np.array(bad))


def test_interrupted_write_leaves_previous_pair_untouched(tmp_path):
    docs = _docs(seed=5)
    _write(tmp_path / "c", docs)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        with IndexedWriter(tmp_path / "c", np.uint16) as w:
            w.add_document(np.array([7, 8, 9]))
            raise KeyboardInterrupt
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert [IndexedDataset(tmp_path / "c")[i].tolist() for i in range(len(docs))] == [
        d.tolist() for d in docs
    ]


def test_interrupted_first_write_leaves_no_files(tmp_path):
    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        with IndexedWriter(tmp_path / "c", np.uint16) as w:
            w.add_document(np.array([7, 8, 9]))
            raise RuntimeError("tokenizer crashed")
    assert list(tmp_path.iterdir()) == []
