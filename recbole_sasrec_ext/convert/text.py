"""Reading the source files: whole or streamed, plain or gzipped, UTF-8, and blank-line helpers.

Decoding problems raise :class:`~recbole_sasrec_ext.convert.errors.ConversionError` naming the
file and the 1-based line.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from recbole_sasrec_ext.convert.errors import ConversionError, PathLike

GZIP_MAGIC = b"\x1f\x8b"


def _open_binary(path: Path) -> io.BufferedIOBase:
    with open(path, "rb") as handle:
        magic = handle.read(len(GZIP_MAGIC))
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def read_text(path: PathLike) -> str:
    """Read a whole (optionally gzipped) UTF-8 file; a BOM is dropped.

    Raises
    ------
    ConversionError
        If the bytes are not UTF-8 (names the line) or the gzip stream is truncated.
    """
    path = Path(path)
    try:
        with _open_binary(path) as handle:
            data = handle.read()
    except EOFError:
        raise ConversionError(path, None, "truncated gzip file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConversionError(path, line, "not valid UTF-8") from None


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, line)`` from an (optionally gzipped) UTF-8 file, streaming."""
    lineno = 0
    try:
        with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="\n") as text:
            for lineno, line in enumerate(text, 1):
                yield lineno, line.rstrip("\n")
    except UnicodeDecodeError:
        raise ConversionError(path, lineno + 1, "not valid UTF-8") from None
    except EOFError:
        raise ConversionError(path, lineno + 1, "truncated gzip file") from None


def _is_blank(line: str) -> bool:
    return not line.strip(" \t\r")


def _first_nonblank_span(text: str) -> tuple[int, int] | None:
    """``(start, end)`` of the first non-empty line of ``text``, or ``None``."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if not _is_blank(text[start:end]):
            return start, end
        start = end + 1
    return None


def _first_nonblank_line_streamed(path: Path) -> str:
    with closing(_iter_lines(path)) as lines:
        return next((line for _, line in lines if not _is_blank(line)), "")
