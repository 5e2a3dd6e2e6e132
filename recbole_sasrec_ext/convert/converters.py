"""Convert public sequential-recommendation files into RecBole atomic files.

Output convention (one folder per data set, which is what RecBole's ``data_path`` expects)::

    <out_dir>/<name>/<name>.inter   tab-separated, header ``user_id:token  item_id:token
                                    [rating:float]  timestamp:float``
    <out_dir>/<name>/<name>.yaml    USER_ID_FIELD / ITEM_ID_FIELD / TIME_FIELD / load_col, with
                                    comment lines naming the source file and the converter

Use it with ``data_path: <out_dir>``, ``dataset: <name>`` and the yaml in ``config_file_list``.

Formats (:class:`Format`):

``sasrec``
    ``user item`` per line (SASRec, BERT4Rec). No times: the timestamp is the within-user position
    (0, 1, 2, ...), the running count of that user's earlier lines in file order.
``seqline``
    ``user i1 i2 ...`` per line (S3Rec, ICLRec). The timestamp is the position in the line. An
    optional tab-separated part of per-item time deltas (``items\\tdelta1 delta2 ...``) is validated
    and ignored, or, with ``time_deltas=True``, its cumulative sum becomes the timestamp (seconds
    since the user's first interaction; ties keep file order because RecBole sorts stably).
``movielens``
    ``ratings.dat`` (``u::i::r::t``) or ``u.data`` (``u<TAB>i<TAB>r<TAB>t``), the separator
    detected from the first non-empty line. Rating and real timestamp are kept.
``amazon``
    Amazon reviews, CSV without header ``user,item,rating,timestamp`` (``ratings_*.csv``; a 2023
    header line ``user_id,parent_asin,rating,timestamp`` is skipped) or JSON lines with
    ``reviewerID``/``user_id``, ``parent_asin``/``asin``, ``overall``/``rating``,
    ``unixReviewTime``/``timestamp``. Filtered to the ``min_count``-core (default 5), then sorted
    stably by (user id string in code-point order, timestamp); users and items are numbered
    1, 2, ... in order of first appearance in that sorted order (ties in time keep file order).

Ids of the first three formats are kept as written (non-negative integers) and rows stay in file
order. Every format accepts an optional k-core filter (:func:`kcore_filter`). Inputs may be gzipped.
Every bad row raises :class:`ConversionError` naming the file and the 1-based line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Union

import numpy as np
import pandas as pd

from recbole_sasrec_ext.atomic_write import atomic_path
from recbole_sasrec_ext.errors import PluginError

PathLike = Union[str, "os.PathLike[str]"]


class Format(str, Enum):
    """Input formats understood by :func:`convert`."""

    SASREC = "sasrec"
    SEQLINE = "seqline"
    MOVIELENS = "movielens"
    AMAZON = "amazon"


USER, ITEM, RATING, TIME = "user_id", "item_id", "rating", "timestamp"
COLUMN_ORDER = (USER, ITEM, RATING, TIME)
FIELD_TYPES = {USER: "token", ITEM: "token", RATING: "float", TIME: "float"}
AMAZON_MIN_COUNT = 5
DEFAULT_MIN_COUNT = {Format.SASREC: 0, Format.SEQLINE: 0, Format.MOVIELENS: 0,
                     Format.AMAZON: AMAZON_MIN_COUNT}
MAX_ID_DIGITS = 18  # keeps every id exactly representable in int64
MAX_EXACT_INT_FLOAT = 2**53  # integral floats below this are written without ".0"
GZIP_MAGIC = b"\x1f\x8b"
EXCERPT_CHARS = 60
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

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

# Line grammars. Fields are separated by spaces/tabs; a trailing "\r" (CRLF files) is accepted.
_WS = r"[ \t\r]"
_ID = rf"[0-9]{{1,{MAX_ID_DIGITS}}}"
_NUM = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_STR_ID = r'[^,\s"]+'
_SEQ_WS = r"[ \r]"  # seqline: the tab separates the optional time-delta part
_ID_DESC = f"a non-negative integer of at most {MAX_ID_DIGITS} digits"
_NUM_DESC = "a number"


class ConversionError(PluginError, ValueError):
    """A bad input row or an empty result; the message names the file and the 1-based line."""

    def __init__(self, path: PathLike, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`convert` wrote."""

    name: str
    users: int
    items: int
    interactions: int
    inter_path: Path
    yaml_path: Path

    def __str__(self) -> str:
        return (f"{self.name}: {self.users} users, {self.items} items, "
                f"{self.interactions} interactions -> {self.inter_path}")


# ----------------------------------------------------------------------------- reading text
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


def _excerpt(line: str) -> str:
    short = line if len(line) <= EXCERPT_CHARS else line[:EXCERPT_CHARS] + "..."
    return repr(short)


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


# ----------------------------------------------------------------------------- line grammars
@dataclass(frozen=True)
class _Field:
    name: str
    pattern: str
    desc: str


class _Grammar:
    """A fixed-field line grammar: fast whole-text check, exact message for the first bad line."""

    def __init__(self, fields: Sequence[_Field], sep: str,
                 split: Callable[[str], list[str]]) -> None:
        self.fields = tuple(fields)
        self.split = split
        body = sep.join(f.pattern for f in fields)
        self.line = re.compile(rf"{_WS}*(?:{body}{_WS}*)?")
        self.bad_line = re.compile(rf"^(?!{self.line.pattern}$)", re.MULTILINE)

    def check(self, text: str, path: Path) -> None:
        """Raise :class:`ConversionError` for the first line of ``text`` outside the grammar."""
        match = self.bad_line.search(text)
        if match is None:
            return
        start = match.start()
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        raise ConversionError(path, text.count("\n", 0, start) + 1, self.diagnose(line))

    def diagnose(self, line: str) -> str:
        """Say what is wrong with a line that does not match the grammar."""
        parts = self.split(line)
        names = " ".join(f.name for f in self.fields)
        if len(parts) != len(self.fields):
            return (f"expected {len(self.fields)} fields ({names}), found {len(parts)} "
                    f"in {_excerpt(line)}")
        for part, field in zip(parts, self.fields):
            if not re.fullmatch(field.pattern, part):
                return f"{field.name} {_excerpt(part)} is not {field.desc}"
        return f"malformed line {_excerpt(line)}"


def _split_ws(line: str) -> list[str]:
    stripped = line.strip(" \t\r")
    return re.split(r"[ \t\r]+", stripped) if stripped else []


def _splitter(sep: str) -> Callable[[str], list[str]]:
    return lambda line: line.strip(" \t\r").split(sep)


_USER_ID = _Field("user id", _ID, _ID_DESC)
_ITEM_ID = _Field("item id", _ID, _ID_DESC)
_RATING_NUM = _Field("rating", _NUM, _NUM_DESC)
_TIME_NUM = _Field("timestamp", _NUM, _NUM_DESC)
_SASREC = _Grammar([_USER_ID, _ITEM_ID], rf"{_WS}+", _split_ws)
_ML_FIELDS = [_USER_ID, _ITEM_ID, _RATING_NUM, _TIME_NUM]
_ML_WS = _Grammar(_ML_FIELDS, rf"{_WS}+", _split_ws)
_ML_COLONS = _Grammar(_ML_FIELDS, "::", _splitter("::"))
_AMAZON_CSV = _Grammar([_Field("user id", _STR_ID, "a non-empty id without spaces or quotes"),
                        _Field("item id", _STR_ID, "a non-empty id without spaces or quotes"),
                        _RATING_NUM, _TIME_NUM], ",", _splitter(","))
_SEQ_IDS = rf"{_ID}(?:{_SEQ_WS}+{_ID})*"
_SEQLINE_RE = re.compile(
    rf"{_SEQ_WS}*{_ID}(?:{_SEQ_WS}+{_ID})+{_SEQ_WS}*(?:\t{_SEQ_WS}*(?:{_SEQ_IDS})?{_SEQ_WS}*)?")


def _read_numeric_table(text: str, names: Sequence[str], dtypes: dict[str, type]) -> pd.DataFrame:
    """Parse whitespace-separated text that already passed its grammar check."""
    if not text.strip():
        return pd.DataFrame({n: np.array([], dtype=dtypes[n]) for n in names})
    return pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, names=list(names),
                       dtype=dtypes, engine="c")


def _positions(users: pd.Series) -> np.ndarray:
    """Within-user position (0, 1, ...) of each row: the user's earlier rows in file order."""
    return users.groupby(users, sort=False).cumcount().to_numpy(dtype=np.int64)


# ----------------------------------------------------------------------------- readers
def read_sasrec(path: PathLike) -> pd.DataFrame:
    """Read ``user item`` lines; ``timestamp`` is the within-user position in file order."""
    path = Path(path)
    text = read_text(path)
    _SASREC.check(text, path)
    frame = _read_numeric_table(text, [USER, ITEM], {USER: np.int64, ITEM: np.int64})
    frame[TIME] = _positions(frame[USER])
    return frame


def _seqline_problem(line: str) -> str:
    parts = line.split("\t")
    if len(parts) > 2:
        return f"more than one tab (items<TAB>time deltas) in {_excerpt(line)}"
    ids = parts[0].split()
    if len(ids) < 2:
        return f"expected a user id and at least one item id, found {_excerpt(parts[0])}"
    for index, token in enumerate(ids):
        if not re.fullmatch(_ID, token):
            what = "user id" if index == 0 else f"item id #{index}"
            return f"{what} {_excerpt(token)} is not {_ID_DESC}"
    for token in parts[1].split() if len(parts) == 2 else []:
        if not re.fullmatch(_ID, token):
            return f"time delta {_excerpt(token)} is not {_ID_DESC}"
    return f"malformed line {_excerpt(line)}"


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


# ----------------------------------------------------------------------------- transforms
def _check_kcore_args(min_count: int, max_passes: int | None) -> None:
    if min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    if max_passes is not None and max_passes < 1:
        raise ValueError(f"k-core passes must be >= 1 or None, got {max_passes}")


def kcore_filter(frame: pd.DataFrame, min_count: int,
                 max_passes: int | None = None) -> pd.DataFrame:
    """Keep the rows whose user and item both have at least ``min_count`` rows.

    Each pass counts users and items on the rows kept so far and drops, at once, every row whose
    user or item is below ``min_count``; passes repeat until nothing changes (the k-core, which
    does not depend on the order of removal) or ``max_passes`` is reached. ``max_passes=1`` is
    the single pass of SASRec's ``DataProcessing.py``. Repeated (user, item) rows all count.

    Parameters
    ----------
    frame
        Rows with ``user_id`` and ``item_id`` columns; row order is kept.
    min_count
        Threshold k; 0 or 1 keeps everything.
    max_passes
        At most this many passes (>= 1); ``None`` iterates until stable.
    """
    _check_kcore_args(min_count, max_passes)
    if min_count <= 1 or frame.empty:
        return frame
    user_codes, user_ids = pd.factorize(frame[USER])
    item_codes, item_ids = pd.factorize(frame[ITEM])
    keep = np.ones(len(frame), dtype=bool)
    passes = 0
    while max_passes is None or passes < max_passes:
        passes += 1
        user_counts = np.bincount(user_codes[keep], minlength=len(user_ids))
        item_counts = np.bincount(item_codes[keep], minlength=len(item_ids))
        new_keep = keep & (user_counts[user_codes] >= min_count) \
            & (item_counts[item_codes] >= min_count)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return frame[keep].reset_index(drop=True)


def sort_and_renumber(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort stably by (user id string, timestamp) and renumber users and items from 1.

    Users get 1, 2, ... in sorted order of their original ids; items get 1, 2, ... in order of
    first appearance in the sorted rows. Ties in time keep the input order.
    """
    user_codes, _ = pd.factorize(frame[USER].astype(str), sort=True)
    order = np.lexsort((frame[TIME].to_numpy(), user_codes))  # np.lexsort is stable
    out = frame.iloc[order].reset_index(drop=True)
    out[USER] = user_codes[order].astype(np.int64) + 1
    out[ITEM] = pd.factorize(out[ITEM])[0].astype(np.int64) + 1
    return out


def _compact(values: pd.Series) -> pd.Series:
    """Integral float columns become int64 so that they are written without ``.0``."""
    array = values.to_numpy()
    if array.dtype.kind == "f" and len(array) and np.all(np.isfinite(array)) \
            and np.all(np.abs(array) < MAX_EXACT_INT_FLOAT) and np.all(array == np.floor(array)):
        return pd.Series(array.astype(np.int64), index=values.index)
    return values


# ----------------------------------------------------------------------------- writing
def output_paths(out_dir: PathLike, name: str) -> tuple[Path, Path]:
    """``(<out_dir>/<name>/<name>.inter, <out_dir>/<name>/<name>.yaml)``; checks ``name``."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"dataset name {name!r} must match {NAME_RE.pattern}")
    folder = Path(out_dir) / name
    return folder / f"{name}.inter", folder / f"{name}.yaml"


def _yaml_text(columns: Sequence[str], comments: Sequence[str]) -> str:
    lines = [f"# {c}".replace("\n", "\\n") for c in comments]
    lines += [f"USER_ID_FIELD: {USER}", f"ITEM_ID_FIELD: {ITEM}", f"TIME_FIELD: {TIME}"]
    if RATING in columns:
        lines.append(f"RATING_FIELD: {RATING}")
    lines += ["load_col:", f"  inter: [{', '.join(columns)}]", ""]
    return "\n".join(lines)


def _refuse_existing(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} already exists; use overwrite=True (--overwrite)")


def write_dataset(frame: pd.DataFrame, out_dir: PathLike, name: str,
                  comments: Sequence[str], overwrite: bool = False) -> ConversionSummary:
    """Write ``frame`` as RecBole atomic files, atomically (temporary file + ``os.replace``).

    Parameters
    ----------
    frame
        Columns ``user_id``, ``item_id``, ``timestamp`` and optionally ``rating``.
    out_dir, name
        Output goes to ``<out_dir>/<name>/<name>.inter`` and ``.yaml``.
    comments
        Comment lines for the top of the yaml (source file, converter, meaning of timestamp).
    overwrite
        Replace existing outputs instead of raising :class:`FileExistsError`.
    """
    inter_path, yaml_path = output_paths(out_dir, name)
    if not overwrite:
        _refuse_existing([inter_path, yaml_path])
    columns = [c for c in COLUMN_ORDER if c in frame.columns]
    table = frame[columns]
    header = "\t".join(f"{c}:{FIELD_TYPES[c]}" for c in columns) + "\n"

    inter_path.parent.mkdir(parents=True, exist_ok=True)
    # Both files are written before either replaces its target; a failure removes both temps.
    with atomic_path(yaml_path) as yaml_tmp, atomic_path(inter_path) as inter_tmp:
        with inter_tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(header)
            table.to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")
        with yaml_tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(_yaml_text(columns, comments))
    return ConversionSummary(name, int(frame[USER].nunique()), int(frame[ITEM].nunique()),
                             len(frame), inter_path, yaml_path)


# ----------------------------------------------------------------------------- entry point
_TIME_NOTES = {
    Format.SASREC: "timestamp = within-user position (0, 1, ...) in file order; no real times",
    Format.SEQLINE: "timestamp = position in the user's line (0, 1, ...); no real times",
    Format.MOVIELENS: "timestamp = the source's Unix time; rows in file order",
    Format.AMAZON: ("timestamp = the source's time; rows sorted stably by (user, time); ids "
                    "renumbered from 1 (users by sorted original id, items by first appearance)"),
}


def convert(fmt: Format | str, input_path: PathLike, name: str, out_dir: PathLike, *,
            min_count: int | None = None, kcore_passes: int | None = None,
            time_deltas: bool = False, overwrite: bool = False) -> ConversionSummary:
    """Convert one source file into ``<out_dir>/<name>/<name>.{inter,yaml}``.

    Parameters
    ----------
    fmt
        One of :class:`Format` (``sasrec``, ``seqline``, ``movielens``, ``amazon``).
    input_path
        Source file (plain or gzipped).
    name
        Data set name (letters, digits, ``_.-``).
    out_dir
        Parent folder of the data set folder (RecBole's ``data_path``).
    min_count
        k-core threshold; ``None`` means 5 for ``amazon`` and 0 (off) otherwise.
    kcore_passes
        Limit on k-core passes (``None``: until stable; 1: SASRec's single pass).
    time_deltas
        ``seqline`` only: use the cumulative time deltas as timestamp.
    overwrite
        Replace existing outputs.

    Raises
    ------
    ConversionError
        Bad row (file and line in the message) or nothing left to write.
    FileExistsError
        Output exists and ``overwrite`` is false.
    """
    fmt = Format(fmt)
    path = Path(input_path)
    if time_deltas and fmt is not Format.SEQLINE:
        raise ValueError("time_deltas applies only to the seqline format")
    k = DEFAULT_MIN_COUNT[fmt] if min_count is None else min_count
    _check_kcore_args(k, kcore_passes)
    outputs = output_paths(out_dir, name)  # checks the name before the (long) parse
    if not overwrite:
        _refuse_existing(outputs)
    if fmt is Format.SASREC:
        frame = read_sasrec(path)
    elif fmt is Format.SEQLINE:
        frame = read_seqline(path, time_deltas=time_deltas)
    elif fmt is Format.MOVIELENS:
        frame = read_movielens(path)
    else:
        frame = read_amazon(path)
    if frame.empty:
        raise ConversionError(path, None, "contains no interactions")
    frame = kcore_filter(frame, k, kcore_passes)
    if frame.empty:
        raise ConversionError(path, None, f"no interactions left after the {k}-core filter")
    if fmt is Format.AMAZON:
        frame = sort_and_renumber(frame)
    for column in (RATING, TIME):
        if column in frame.columns:
            frame[column] = _compact(frame[column])
    time_note = ("timestamp = cumulative time deltas (seconds since the user's first item)"
                 if time_deltas else _TIME_NOTES[fmt])
    passes = "until stable" if kcore_passes is None else f"at most {kcore_passes} passes"
    comments = [f"RecBole dataset '{name}', written by recbole_sasrec_ext.convert "
                f"(--format {fmt.value})",
                f"source: {path.resolve()}",
                time_note,
                f"k-core filter: min_count={k}" + (f" ({passes})" if k > 1 else " (off)"),
                f"data: {name}.inter next to this file; use data_path: <folder holding {name}/>"]
    return write_dataset(frame, out_dir, name, comments, overwrite=overwrite)
