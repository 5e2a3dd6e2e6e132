"""Checks of RecBole atomic files before RecBole reads them, so that a malformed file is an error
that names the file and line instead of a pandas traceback or silently shifted columns."""

from __future__ import annotations

import codecs
import csv
import difflib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_sasrec_ext.common.errors import PluginError

#: RecBole's feature types (``recbole.utils.FeatureType`` values).
FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")
#: Atomic file suffixes the plugin checks when present.
CHECKED_SUFFIXES = ("inter", "user", "item")


#: Line breaks as RecBole's reader (pandas) sees them.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: UTF-8 byte order mark (Excel and some Windows tools write it).
BOM = "\ufeff"
UTF8_BOM = BOM.encode()
#: Bytes of an atomic file checked at a time (whole lines).
BLOCK_BYTES = 1 << 23
#: Data lines (non-blank, after the header) of each file :func:`check_atomic_file` passed, by
#: resolved path: the reader's row count is checked against it (:func:`check_rows_read`).
_DATA_LINES: dict[str, int] = {}


def reading_encoding(encoding: str | None) -> str:
    """The encoding to read with: ``utf-8-sig`` for UTF-8 or None (a leading BOM is dropped)."""
    encoding = encoding or "utf-8"
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _unknown_encoding(encoding: str | None) -> PluginError:
    return PluginError(f"config key 'encoding' = {encoding!r} is not allowed: unknown encoding")


def read_text(path: Path, encoding: str | None = "utf-8") -> str:
    """The file's text; undecodable bytes are an error naming the file and byte offset."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PluginError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode(reading_encoding(encoding))
    except UnicodeDecodeError as exc:
        raise PluginError(
            f"{path}: not {encoding or 'utf-8'} text ({exc.reason} at byte {exc.start})"
        ) from None
    except LookupError:
        raise _unknown_encoding(encoding) from None


def read_header(path: Path, encoding: str | None = "utf-8") -> str:
    """The first line of an atomic file (BOM dropped), decoded like :func:`read_text`."""
    with open(path, "rb") as f:
        head = f.readline()
    try:
        return head.decode(reading_encoding(encoding)).lstrip(BOM).rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise PluginError(
            f"{path}:1: not {encoding or 'utf-8'} text ({exc.reason} at byte {exc.start})"
        ) from None
    except LookupError:
        raise _unknown_encoding(encoding) from None


def _text_blocks(path: Path, encoding: str | None) -> Iterator[tuple[int, str]]:
    """(byte offset, text) of consecutive blocks of whole lines of the file (each block but the
    last ends right after a ``\\n`` byte), decoded like :func:`read_text`; the BOM is dropped.

    Encodings in which a ``\\n`` byte can belong to another character (UTF-16, UTF-32) are
    decoded in one block."""
    try:
        name = codecs.lookup(reading_encoding(encoding)).name
    except LookupError:
        raise _unknown_encoding(encoding) from None
    whole = name.startswith(("utf-16", "utf-32"))
    later = "utf-8" if name == "utf-8-sig" else name  # the BOM bytes are skipped below
    offset, pending = 0, b""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise PluginError(f"{path}: cannot be read ({exc.strerror})") from None
    with handle:
        while True:
            data = handle.read(-1 if whole else BLOCK_BYTES)
            chunk = pending + data
            cut = len(chunk)
            if data and not whole:
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:  # no line end yet: read on
                    pending = chunk
                    continue
            block, pending = chunk[:cut], chunk[cut:]
            skip = (len(UTF8_BOM)
                    if offset == 0 and name == "utf-8-sig" and block.startswith(UTF8_BOM) else 0)
            try:
                text = block[skip:].decode(later)
            except UnicodeDecodeError as exc:
                raise PluginError(
                    f"{path}: not {encoding or 'utf-8'} text "
                    f"({exc.reason} at byte {offset + skip + exc.start})"
                ) from None
            yield offset, text.lstrip(BOM) if offset == 0 else text
            offset += len(block)
            if not data or whole:
                return


def check_atomic_file(
    path: Path,
    separator: str = "\t",
    encoding: str | None = "utf-8",
    required: Iterable[tuple[str, str]] = (),
) -> int:
    """Raise :class:`PluginError` naming ``path`` and the line if the file is malformed; return
    the number of data lines (non-blank lines after the header).

    Checked: the encoding (a UTF-8 BOM is allowed), a ``name:type`` header with RecBole's types and
    distinct names, the ``required`` ``(field, config key)`` columns, the same number of columns on
    every non-blank line, no NUL characters, and finite numbers (or nothing) in ``float`` fields,
    in that order of precedence (each at its first line). Quotes are plain characters (RecBole's
    files have no quoting; the readers are told so, see :data:`READ_CSV_STRICT`). The file is read
    in blocks of whole lines of :data:`BLOCK_BYTES` (memory does not grow with the file), once to
    decode it and once to check.
    """
    if not separator:
        raise PluginError("config key 'field_separator' = '' is not allowed: expected a character")
    for _ in _text_blocks(path, encoding):  # every byte decodes, before any other check
        pass
    names: list[str] | None = None
    float_columns: list[int] = []
    first_line = 1  # line number of the block's first line
    n_rows = 0
    bad_count: tuple[int, int] | None = None  # (line, columns found)
    nul_line: int | None = None
    bad_float: dict[int, tuple[int, str]] = {}  # column -> (line, raw value)
    for _, text in _text_blocks(path, encoding):
        lines = _LINE_BREAK.split(text)
        if lines and lines[-1] == "":
            lines.pop()
        body_start = first_line
        if names is None:
            if not lines or not lines[0].strip():
                raise PluginError(
                    f"{path}:1: missing header (expected fields like 'user_id:token')"
                )
            names, types = _parse_header(path, lines[0], separator)
            _check_required(path, names, required)
            float_columns = [i for i, t in enumerate(types) if t == "float"]
            lines, body_start = lines[1:], 2
        first_line = body_start + len(lines)
        line_numbers = np.array([body_start + i for i, line in enumerate(lines) if line.strip()])
        rows = [line for line in lines if line.strip()]
        n_rows += len(rows)
        if not rows:
            continue
        counts = np.array([row.count(separator) + 1 for row in rows])
        bad = np.flatnonzero(counts != len(names))
        if bad.size and bad_count is None:
            bad_count = (int(line_numbers[bad[0]]), int(counts[bad[0]]))
        if nul_line is None:
            nul = next((i for i, row in enumerate(rows) if "\x00" in row), None)
            nul_line = None if nul is None else int(line_numbers[nul])
        if bad_count is not None:
            continue  # reported before any float problem
        for column in float_columns:
            if column in bad_float:
                continue
            raw = pd.Series([row.split(separator)[column] for row in rows],
                            dtype=object).str.strip()
            parsed = pd.to_numeric(raw, errors="coerce")
            finite = np.isfinite(parsed.to_numpy(dtype=float, na_value=np.nan))
            invalid = np.flatnonzero(~finite & (raw != "").to_numpy())
            if invalid.size:
                bad_float[column] = (int(line_numbers[invalid[0]]), raw.iloc[invalid[0]])
    if names is None:
        raise PluginError(f"{path}:1: missing header (expected fields like 'user_id:token')")
    if not n_rows:
        raise PluginError(f"{path}: no data rows after the header")
    if bad_count is not None:
        raise PluginError(
            f"{path}:{bad_count[0]}: expected {len(names)} columns "
            f"({', '.join(names)}), found {bad_count[1]}"
        )
    if nul_line is not None:
        raise PluginError(f"{path}:{nul_line}: contains a NUL character")
    for column in float_columns:
        if column in bad_float:
            line, value = bad_float[column]
            kind = "number" if pd.isna(pd.to_numeric(value, errors="coerce")) else "finite number"
            raise PluginError(
                f"{path}:{line}: field '{names[column]}' (float) is not a {kind}: {value!r}"
            )
    _DATA_LINES[str(Path(path).resolve())] = n_rows
    return n_rows


#: ``pandas.read_csv`` options of every atomic-file reader: no quoting (a ``"`` is a character of
#: its token, never the start of a field spanning lines).
READ_CSV_STRICT = {"quoting": csv.QUOTE_NONE}


def check_rows_read(path, rows: int) -> None:
    """Raise unless a reader got one row per data line of ``path`` (as counted when it was
    checked; files never checked are not compared)."""
    expected = _DATA_LINES.get(str(Path(path).resolve()))
    if expected is not None and rows != expected:
        raise PluginError(
            f"{path}: read {rows} rows but the file has {expected} data lines "
            "(a quote or separator the reader treats differently?)"
        )


def _check_required(path: Path, names: list[str], required: Iterable[tuple[str, str]]) -> None:
    for field, key in required:
        if field not in names:
            close = difflib.get_close_matches(field, names, n=1)
            hint = f"; did you mean '{close[0]}' (set --{key}={close[0]})?" if close else ""
            raise PluginError(
                f"{path}:1: missing column '{field}' ({key}); "
                f"the header has {', '.join(names)}{hint}"
            )


def _parse_header(path: Path, header: str, separator: str) -> tuple[list[str], list[str]]:
    names, types = [], []
    for field in header.rstrip("\r\n").split(separator):
        name, _, ftype = field.partition(":")
        if not name or ftype not in FEATURE_TYPES:
            raise PluginError(
                f"{path}:1: bad header field {field!r}: expected 'name:type' with type one of "
                f"{', '.join(FEATURE_TYPES)}"
            )
        if name in names:
            raise PluginError(f"{path}:1: field '{name}' appears twice in the header")
        names.append(name)
        types.append(ftype)
    return names, types


def check_dataset_files(
    data_path: str, dataset: str, load_col, separator: str, encoding: str,
    required: Iterable[tuple[str, str]] = (),
) -> str:
    """Check the atomic files RecBole will read for ``dataset`` in ``data_path``; ``required`` are
    the ``(field, config key)`` columns the ``.inter`` file must have besides ``load_col``'s.

    Returns the encoding RecBole should read the files with (:func:`reading_encoding`)."""
    folder = Path(data_path)
    inter = folder / f"{dataset}.inter"
    if not inter.is_file():
        raise PluginError(
            f"dataset '{dataset}' not found: looked for {inter.resolve()} "
            f"(set --data_path=FOLDER, the parent of '{dataset}/'; see datasets/README.md)"
        )
    for suffix in CHECKED_SUFFIXES:
        file = folder / f"{dataset}.{suffix}"
        loaded = load_col is None or (isinstance(load_col, dict) and suffix in load_col)
        if file.is_file() and loaded:
            columns = load_col.get(suffix, []) if isinstance(load_col, dict) else []
            needed = [(c, f"load_col.{suffix}") for c in columns if isinstance(c, str)]
            if suffix == "inter":
                needed = list(required) + needed
            check_atomic_file(file, separator, encoding, needed)
    return reading_encoding(encoding)
