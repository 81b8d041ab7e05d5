"""Crash-consistent writes: fsync of files and directories, and text written to a temporary file that
is renamed over the target. Every writer of run files, checkpoints and token files uses these.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(directory: Path) -> None:
    """Flush every file under `directory` and the directory entries themselves to disk."""
    for path in Path(directory).rglob("*"):
        fsync(path)
    fsync(directory)


def host_tag() -> str:
    return socket.gethostname().replace(".", "_")


def temporary_path(path: Path) -> Path:
    """A hidden name beside `path` that no other writer uses: host and pid in the name, so concurrent writers
    (ranks, nodes, two runs) never share a temporary file, and a leftover can be traced to its writer."""
    path = Path(path)
    return path.with_name(f".{path.name}.{host_tag()}.{os.getpid()}.tmp")


def replace(tmp: Path, final: Path) -> None:
    """Move a fully written (and flushed) `tmp` over `final`, durably: a rename is on disk only once its
    directory entry is."""
    os.replace(tmp, final)
    fsync(Path(final).parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old content or the new, never a torn file."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
