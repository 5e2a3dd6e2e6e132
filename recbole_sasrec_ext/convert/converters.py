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

This module holds :class:`Format` and the entry point :func:`convert`; each step it runs is a
module beside it (reading: :mod:`.text`, :mod:`.grammar`, :mod:`.readers`; :mod:`.transforms`;
:mod:`.writer`).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from recbole_sasrec_ext.convert.columns import RATING, TIME
from recbole_sasrec_ext.convert.errors import ConversionError, PathLike
from recbole_sasrec_ext.convert.grammar import _SASREC  # noqa: F401 (tests check a grammar here)
from recbole_sasrec_ext.convert.readers import (
    read_amazon,
    read_movielens,
    read_sasrec,
    read_seqline,
)
from recbole_sasrec_ext.convert.transforms import (
    _check_kcore_args,
    _compact,
    kcore_filter,
    sort_and_renumber,
)
from recbole_sasrec_ext.convert.writer import (
    ConversionSummary,
    _refuse_existing,
    output_paths,
    write_dataset,
)

__all__ = [
    "AMAZON_MIN_COUNT",
    "DEFAULT_MIN_COUNT",
    "ConversionError",
    "ConversionSummary",
    "Format",
    "convert",
    "kcore_filter",
    "read_amazon",
    "read_movielens",
    "read_sasrec",
    "read_seqline",
    "sort_and_renumber",
    "write_dataset",
]


class Format(str, Enum):
    """Input formats understood by :func:`convert`."""

    SASREC = "sasrec"
    SEQLINE = "seqline"
    MOVIELENS = "movielens"
    AMAZON = "amazon"


AMAZON_MIN_COUNT = 5
DEFAULT_MIN_COUNT = {Format.SASREC: 0, Format.SEQLINE: 0, Format.MOVIELENS: 0,
                     Format.AMAZON: AMAZON_MIN_COUNT}
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
