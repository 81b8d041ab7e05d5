"""Verified checkpoints: the completion marker records the size and checksum of every file of a checkpoint,
and nothing is loaded from a checkpoint whose files do not match it.

Marker (ds_parrots_complete.json in the step directory):
    {"step": 8, "files": [name, ...], "hash": "xxh3_64", "checksums": {name: {"size": n, "xxh3_64": hex}}}
"files" stays a list of names, as markers written before checksums existed have it ({"step", "files"}):
of those, only presence can be checked. Checkpoints older still have no marker at all and are trusted as
`latest` names them.

Each rank hashes the files it writes as DeepSpeed's checkpoint engine finishes each one, so they are read
back once, from the page cache, by all ranks in parallel; rank 0 gathers the records into the marker and
hashes what no rank recorded (our topology file, DeepSpeed's zero_to_fp32.py). xxh3-64 rather than CRC32:
read back and hashed it runs at about 10 GB/s on one core where zlib.crc32 manages under 3
(bench/bench_faults.py --checksum-cost measures it on a save), and xxhash is already installed (a dependency
of `datasets`). It guards against damage (flipped bits, truncation, a partial copy), not against tampering:
whoever can rewrite a file can rewrite the marker; weights_only loading is what keeps a planted file inert.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

COMPLETE_FILE = "ds_parrots_complete.json"
ALGORITHM = "xxh3_64"
_CHUNK = 8 << 20


def digest(path: Path) -> dict:
    """{"size": bytes, "xxh3_64": hex} of one file, read in chunks into one reused buffer."""
    import xxhash

    h, size = xxhash.xxh3_64(), 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return {"size": size, ALGORITHM: h.hexdigest()}


class RecordWrites:
    """While active, every file the engine's checkpoint engine writes under `tag_dir` on this rank is hashed
    right after it is written; `records` maps its name in the tag directory to its digest. Only DeepSpeed's
    synchronous TorchCheckpointEngine is wrapped (others may still be writing when save() returns): with
    another, nothing is recorded here and rank 0 hashes every file once all ranks are done."""

    def __init__(self, engine, tag_dir: Path):
        self.tag_dir = Path(tag_dir).resolve()
        self.records: dict[str, dict] = {}
        ce = getattr(engine, "checkpoint_engine", None)
        self._ce = ce if type(ce).__name__ == "TorchCheckpointEngine" else None

    def __enter__(self) -> RecordWrites:
        if self._ce is not None:
            original = self._ce.save

            def save(state_dict, path):
                original(state_dict, path)
                self._record(Path(path))

            self._ce.save = save  # an instance attribute, shadowing the class's method until __exit__
        return self

    def _record(self, path: Path) -> None:
        try:
            name = str(path.resolve().relative_to(self.tag_dir))
        except ValueError:
            return  # not a file of this checkpoint
        self.records[name] = digest(path)

    def __exit__(self, *exc) -> None:
        if self._ce is not None:
            del self._ce.save


def marker(step: int, tag_dir: Path, gathered: list[dict]) -> dict:
    """The completion marker of a checkpoint whose files are all on disk: every rank's records, and digests
    of the files no rank recorded."""
    tag_dir = Path(tag_dir)
    files = sorted(str(p.relative_to(tag_dir)) for p in tag_dir.rglob("*") if p.is_file())
    files = [f for f in files if f != COMPLETE_FILE]
    records: dict[str, list[dict]] = {}
    for part in gathered:
        for name, rec in part.items():
            records.setdefault(name, []).append(rec)
    # A file no rank recorded, or that two ranks wrote (records that differ), is hashed as it lies on disk.
    checksums = {f: records[f][0] if _agree(records.get(f)) else digest(tag_dir / f) for f in files}
    return {"step": step, "files": files, "hash": ALGORITHM, "checksums": checksums}


def _agree(records: Optional[list[dict]]) -> bool:
    return bool(records) and all(r == records[0] for r in records)


def read_marker(tag_dir: Path) -> Optional[dict]:
    """The marker of a step directory; None if it has none; {"error": text} if it cannot be read."""
    path = Path(tag_dir) / COMPLETE_FILE
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body
    except (OSError, ValueError) as e:
        return {"error": f"{COMPLETE_FILE} is unreadable ({e})"}


def has_checksums(tag_dir: Path) -> bool:
    body = read_marker(tag_dir)
    return bool(body and body.get("checksums"))


def listed_files(body: dict) -> list[str]:
    return sorted(body.get("files") or [])


def check_files(tag_dir: Path) -> Optional[str]:
    """What is wrong with a checkpoint's files that a stat shows (a recorded file missing or of another size,
    a .pt file not saved with it), as text naming the file; None if nothing. Cheap: reads no file data."""
    tag_dir = Path(tag_dir)
    body = read_marker(tag_dir)
    if body is None:
        return None  # written before completion markers: nothing recorded to check against
    if "error" in body:
        return body["error"]
    checksums = body.get("checksums") or {}
    if checksums and body.get("hash") != ALGORITHM:
        return f"{COMPLETE_FILE} records {body.get('hash')!r} checksums, which this ds_parrots cannot check"
    files = listed_files(body)
    for name in files:
        path = tag_dir / name
        if not path.is_file():
            return f"{name} is missing"
        want = (checksums.get(name) or {}).get("size")
        if want is not None and path.stat().st_size != want:
            return f"{name} is {path.stat().st_size} bytes, {want} when saved (truncated or overwritten)"
    unlisted = sorted(p.name for p in tag_dir.glob("*.pt") if p.name not in set(files))
    if files and unlisted:
        return f"{unlisted[0]} was not saved with this checkpoint (not in its {COMPLETE_FILE})"
    return None


def share(tag_dir: Path, rank: int, world: int) -> list[str]:
    """The recorded files rank `rank` of `world` hashes when they verify a checkpoint together: the largest
    first, each to the rank with the fewest bytes so far, so that every rank reads about as much."""
    body = read_marker(tag_dir) or {}
    checksums = body.get("checksums") or {}
    load, mine = [0] * world, []
    for name in sorted(checksums, key=lambda n: (-int(checksums[n].get("size", 0)), n)):
        r = min(range(world), key=lambda i: load[i])
        load[r] += int(checksums[name].get("size", 0))
        if r == rank:
            mine.append(name)
    return mine


def check_checksums(tag_dir: Path, names: Optional[list[str]] = None) -> Optional[str]:
    """check_files, then the checksum of each recorded file in `names` (default: all of them): the first
    problem as text naming the file, or None."""
    problem = check_files(tag_dir)
    if problem:
        return problem
    body = read_marker(tag_dir) or {}
    checksums = body.get("checksums") or {}
    for name in sorted(checksums) if names is None else names:
        if digest(Path(tag_dir) / name).get(ALGORITHM) != checksums[name].get(ALGORITHM):
            return f"{name} checksum mismatch (its contents changed since it was saved)"
    return None


def describe(tag_dir: Path) -> str:
    """How much a verification of this checkpoint can vouch for, for the log."""
    body = read_marker(tag_dir)
    if body is None:
        return "no completion marker (written before ds_parrots recorded one): its files were not checked"
    if not body.get("checksums"):
        return "no checksums recorded (written before ds_parrots recorded them): checked its file list only"
    return f"{len(body['checksums'])} files verified ({ALGORITHM})"


# Verdicts of full verifications (None: verified) by the marker they were made against: a checkpoint this
# process saved, or verified to resume from, is not read again for a message that names it.
verdicts: dict[tuple, Optional[str]] = {}


def marker_key(tag_dir: Path) -> Optional[tuple]:
    try:
        st = (Path(tag_dir) / COMPLETE_FILE).stat()
    except OSError:
        return None
    return (str(Path(tag_dir).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def remember(tag_dir: Path, problem: Optional[str]) -> None:
    key = marker_key(tag_dir)
    if key is not None:
        verdicts[key] = problem


def verify(tag_dir: Path) -> Optional[str]:
    """What is wrong with a checkpoint's files (one text naming the file), or None: every recorded file is
    present with its size and checksum. Checkpoints written before checksums were recorded are checked for
    what their marker lists, those before markers not at all."""
    key = marker_key(tag_dir)
    if key is not None and key in verdicts:
        return verdicts[key]
    problem = check_checksums(tag_dir)
    remember(tag_dir, problem)
    return problem


def unverified_message(tag_dir: Path, problem: str, older: Optional[str]) -> str:
    """One line for a checkpoint that failed verification, with the older one to use instead, if any."""
    tag_dir = Path(tag_dir)
    return f"checkpoint {tag_dir} failed verification: {problem}; " + (
        f"use the older checkpoint {tag_dir.parent / older}, which verifies"
        if older
        else "no older checkpoint of the run verifies; restore the file from a copy or train again"
    )
