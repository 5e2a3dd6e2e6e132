"""Atomic file replacement: write to a temporary file beside the target, then ``os.replace``.

A reader (or a crash) never sees a half-written file, and the temporary file is removed whenever
writing fails. Used for benchmark results, README sections, converted data sets and checkpoints.
No torch import.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Permissions of a new file before the umask, as for ``open()`` (``mkstemp`` would give 0600).
FILE_MODE = 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """A hidden temporary path beside ``path`` (same folder, so the rename is atomic).

    Write the new content to the yielded path; when the block ends without an exception the file
    is moved over ``path`` (with ``open()``'s usual permissions), otherwise it is removed. Nest two
    blocks to replace a pair of files only if both were written.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: os.PathLike | str, text: str) -> None:
    """Replace ``path`` by a file holding ``text`` (UTF-8, newlines as given), atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
