"""Crash-consistent writes: fsync of files and directories, and text written to a temporary file that
is renamed over the target. Every writer of run files, checkpoints and token files uses these.
"""

from __future__ import annotations

import os
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


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old content or the new, never a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync(path.parent)
