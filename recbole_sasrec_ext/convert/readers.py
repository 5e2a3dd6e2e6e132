"""One reader per input format: a source file -> an interaction frame (``user_id``, ``item_id``,
``timestamp`` and, where the source has it, ``rating``).

Every bad row raises :class:`~recbole_sasrec_ext.convert.errors.ConversionError` naming the file
and the 1-based line. The formats are described in :mod:`recbole_sasrec_ext.convert.converters`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_sasrec_ext.convert.columns import ITEM, RATING, TIME, USER
from recbole_sasrec_ext.convert.errors import ConversionError, PathLike
from recbole_sasrec_ext.convert.grammar import (
    _AMAZON_CSV,
    _ML_COLONS,
    _ML_WS,
    _NUM,
    _NUM_DESC,
    _SASREC,
    _SEQLINE_RE,
    _seqline_problem,
)
from recbole_sasrec_ext.convert.text import (
    _first_nonblank_line_streamed,
    _first_nonblank_span,
    _is_blank,
    _iter_lines,
    read_text,
)

# Amazon JSON keys, the first one present wins: 2014/2018 dumps use reviewerID, asin, overall,
# unixReviewTime; 2023 dumps user_id, parent_asin (preferred over their asin), rating, timestamp.
AMAZON_USER_KEYS = ("reviewerID", "user_id")
AMAZON_ITEM_KEYS = ("parent_asin", "asin")
AMAZON_RATING_KEYS = ("overall", "rating")
AMAZON_TIME_KEYS = ("unixReviewTime", "timestamp")
AMAZON_CSV_HEADERS = {
    ("user_id", "parent_asin", "rating", "timestamp"),
    ("user_id", "asin", "rating", "timestamp"),
    ("reviewerid", "asin", "overall", "unixreviewtime"),
    ("user", "item", "rating", "timestamp"),
}


def _read_numeric_table(text: str, names: Sequence[str], dtypes: dict[str, type]) -> pd.DataFrame:
    """Parse whitespace-separated text that already passed its grammar check."""
    if not text.strip():
        return pd.DataFrame({n: np.array([], dtype=dtypes[n]) for n in names})
    return pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, names=list(names),
                       dtype=dtypes, engine="c")


def _positions(users: pd.Series) -> np.ndarray:
    """Within-user position (0, 1, ...) of each row: the user's earlier rows in file order."""
    return users.groupby(users, sort=False).cumcount().to_numpy(dtype=np.int64)


def read_sasrec(path: PathLike) -> pd.DataFrame:
    """Read ``user item`` lines; ``timestamp`` is the within-user position in file order."""
    path = Path(path)
    text = read_text(path)
    _SASREC.check(text, path)
    frame = _read_numeric_table(text, [USER, ITEM], {USER: np.int64, ITEM: np.int64})
    frame[TIME] = _positions(frame[USER])
    return frame


def read_seqline(path: PathLike, time_deltas: bool = False) -> pd.DataFrame:
    """Read ``user i1 i2 ...[<TAB>d1 d2 ...]`` lines, one line per user.

    Parameters
    ----------
    path
        Input file.
    time_deltas
        If true, the timestamp is the cumulative sum of the deltas after the tab (which must
        then be present, one per item); otherwise it is the position in the line and the delta
        part, if any, is only validated.
    """
    path = Path(path)
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    times: list[np.ndarray] = []
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if _is_blank(line):
            continue
        if not _SEQLINE_RE.fullmatch(line):
            raise ConversionError(path, lineno, _seqline_problem(line))
        item_part, _, delta_part = line.partition("\t")
        ids = np.array(item_part.split(), dtype=np.int64)
        user, seq = int(ids[0]), ids[1:]
        if user in first_line:
            raise ConversionError(path, lineno,
                                  f"user {user} already has a line (line {first_line[user]})")
        first_line[user] = lineno
        if time_deltas:
            deltas = np.array(delta_part.split(), dtype=np.int64)
            if len(deltas) != len(seq):
                raise ConversionError(path, lineno,
                                      f"found {len(deltas)} time deltas for {len(seq)} items")
            times.append(np.cumsum(deltas))
        else:
            times.append(np.arange(len(seq), dtype=np.int64))
        users.append(np.full(len(seq), user, dtype=np.int64))
        items.append(seq)
    empty = np.array([], dtype=np.int64)
    return pd.DataFrame({USER: np.concatenate(users or [empty]),
                         ITEM: np.concatenate(items or [empty]),
                         TIME: np.concatenate(times or [empty])})


def read_movielens(path: PathLike) -> pd.DataFrame:
    """Read MovieLens ``ratings.dat`` (``::``) or ``u.data`` (tabs); keeps rating and time."""
    path = Path(path)
    text = read_text(path)
    span = _first_nonblank_span(text)
    colons = span is not None and "::" in text[span[0]:span[1]]
    (_ML_COLONS if colons else _ML_WS).check(text, path)
    if colons:
        text = text.replace("::", " ")
    dtypes = {USER: np.int64, ITEM: np.int64, RATING: np.float64, TIME: np.float64}
    return _read_numeric_table(text, [USER, ITEM, RATING, TIME], dtypes)


def _drop_csv_header(text: str) -> str:
    """Blank out a known header line (keeping line numbers) if it is the first non-empty line."""
    span = _first_nonblank_span(text)
    if span is None:
        return text
    start, end = span
    fields = tuple(f.strip(" \t\r").lower() for f in text[start:end].split(","))
    return text[:start] + text[end:] if fields in AMAZON_CSV_HEADERS else text


def _read_amazon_csv(path: Path) -> pd.DataFrame:
    text = _drop_csv_header(read_text(path))
    _AMAZON_CSV.check(text, path)
    text = re.sub(r"(?m)^[ \t\r]+|[ \t\r]+$", "", text)  # strip lines; blank ones are skipped
    names = [USER, ITEM, RATING, TIME]
    if not text.strip():
        return pd.DataFrame({n: pd.Series([], dtype=object if n in (USER, ITEM) else float)
                             for n in names})
    return pd.read_csv(io.StringIO(text), sep=",", header=None, names=names, engine="c",
                       dtype={USER: str, ITEM: str, RATING: np.float64, TIME: np.float64},
                       quoting=csv.QUOTE_NONE, na_filter=False)


def _json_value(record: dict, keys: Sequence[str], path: Path, lineno: int) -> object:
    for key in keys:
        if key in record:
            return record[key]
    raise ConversionError(path, lineno, f"missing key: none of {', '.join(keys)}")


def _json_id(record: dict, keys: Sequence[str], path: Path, lineno: int) -> str:
    value = _json_value(record, keys, path, lineno)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ConversionError(path, lineno, f"{'/'.join(keys)} {value!r} is not a non-empty id")
    return str(value)


def _json_number(record: dict, keys: Sequence[str], path: Path, lineno: int) -> float:
    value = _json_value(record, keys, path, lineno)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        isinstance(value, str) and re.fullmatch(_NUM, value.strip()))
    number = float(value) if ok else float("nan")
    if not np.isfinite(number):
        raise ConversionError(path, lineno, f"{'/'.join(keys)} {value!r} is not {_NUM_DESC}")
    return number


def _read_amazon_json(path: Path) -> pd.DataFrame:
    rows: dict[str, list] = {USER: [], ITEM: [], RATING: [], TIME: []}
    for lineno, line in _iter_lines(path):
        if _is_blank(line):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConversionError(path, lineno, f"bad JSON ({exc.msg}, column {exc.colno})") \
                from None
        if not isinstance(record, dict):
            raise ConversionError(path, lineno, "expected a JSON object")
        rows[USER].append(_json_id(record, AMAZON_USER_KEYS, path, lineno))
        rows[ITEM].append(_json_id(record, AMAZON_ITEM_KEYS, path, lineno))
        rows[RATING].append(_json_number(record, AMAZON_RATING_KEYS, path, lineno))
        rows[TIME].append(_json_number(record, AMAZON_TIME_KEYS, path, lineno))
    return pd.DataFrame({USER: pd.Series(rows[USER], dtype=object),
                         ITEM: pd.Series(rows[ITEM], dtype=object),
                         RATING: np.array(rows[RATING], dtype=np.float64),
                         TIME: np.array(rows[TIME], dtype=np.float64)})


def read_amazon(path: PathLike) -> pd.DataFrame:
    """Read Amazon reviews (CSV or JSON lines, detected from the first non-empty line).

    Ids stay strings; apply :func:`kcore_filter` and :func:`sort_and_renumber` afterwards.
    """
    path = Path(path)
    is_json = _first_nonblank_line_streamed(path).lstrip().startswith("{")
    return _read_amazon_json(path) if is_json else _read_amazon_csv(path)
