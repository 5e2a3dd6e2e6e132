"""Line grammars of the text formats, and the one-line messages that say what a bad line breaks.

A :class:`_Grammar` checks a whole text with one regular expression and, for the first line
outside it, raises :class:`~recbole_sasrec_ext.convert.errors.ConversionError` naming the line
and the first bad field. The seqline format has its own expression and message
(:data:`_SEQLINE_RE`, :func:`_seqline_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recbole_sasrec_ext.convert.errors import ConversionError

MAX_ID_DIGITS = 18  # keeps every id exactly representable in int64
EXCERPT_CHARS = 60

# Line grammars. Fields are separated by spaces/tabs; a trailing "\r" (CRLF files) is accepted.
_WS = r"[ \t\r]"
_ID = rf"[0-9]{{1,{MAX_ID_DIGITS}}}"
_NUM = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_STR_ID = r'[^,\s"]+'
_SEQ_WS = r"[ \r]"  # seqline: the tab separates the optional time-delta part
_ID_DESC = f"a non-negative integer of at most {MAX_ID_DIGITS} digits"
_NUM_DESC = "a number"


def _excerpt(line: str) -> str:
    short = line if len(line) <= EXCERPT_CHARS else line[:EXCERPT_CHARS] + "..."
    return repr(short)


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
