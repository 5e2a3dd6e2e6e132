"""The run summary: what one run of the pipeline reports, as frozen dataclasses and JSON.

:func:`recbole_sasrec_ext.apps.quick_start.run` returns a :class:`RunSummary`; the command line
prints it as the last stdout line (:meth:`RunSummary.to_json`); the benchmark reads it back with
:meth:`RunSummary.from_json`, which raises :class:`SummaryError` naming the first missing or
malformed field, so a renamed field fails loudly instead of blanking a column.

This module imports neither torch nor RecBole (the benchmark runner reads summaries without them).

Adding a field
--------------
Add it to :class:`RunSummary` after the required fields with a default of ``None``, written with
``_field("what it means", parse=_optional(<parser>), default=None)``: summaries written before
the field existed still load (the field reads ``None``), and the README table
(:func:`fields_markdown`, checked by ``tests/test_summary.py``) picks up its documentation.
Bump :data:`SCHEMA_VERSION` only when a field is removed or renamed or its meaning changes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, TypeVar

#: Version of the summary's layout; :meth:`RunSummary.from_json` refuses any other.
SCHEMA_VERSION = 1

T = TypeVar("T")
Parser = Callable[[Any, str], Any]


class StoppedBy(str, Enum):
    """Why a run's training ended (``RunSummary.stopped_by``; the benchmark adds ``timeout``)."""

    EARLY_STOPPING = "early_stopping"
    EPOCH_CAP = "epoch_cap"
    # a model fitted in one pass, nothing to iterate (``ONE_PASS`` = True: Pop)
    ONE_PASS = "one_pass"
    TIMEOUT = "timeout"  # killed by the benchmark runner's timeout (no summary: set by the runner)


class SummaryError(ValueError):
    """A run summary (or a part of one) that does not follow the schema; the message names the
    field."""


# ----- parsers: (value, field path) -> checked value ----------------------------------------------
def _fail(path: str, expected: str, value: Any) -> SummaryError:
    return SummaryError(f"run summary field '{path}': expected {expected}, got {value!r}")


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "an integer", value)
    return value


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number", value)
    return float(value)


def _optional(parse: Parser) -> Parser:
    def parse_optional(value: Any, path: str) -> Any:
        return None if value is None else parse(value, path)

    return parse_optional


def _mapping(parse_value: Parser) -> Parser:
    def parse_mapping(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail(path, "an object", value)
        return {_str(k, path): parse_value(v, f"{path}.{k}") for k, v in value.items()}

    return parse_mapping


def _sequence(parse_item: Parser) -> Parser:
    def parse_sequence(value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise _fail(path, "a list", value)
        return tuple(parse_item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return parse_sequence


def _nested(cls: type[T]) -> Parser:
    def parse_nested(value: Any, path: str) -> T:
        return _from_dict(cls, value, path)

    return parse_nested


def _field(doc: str, parse: Parser, **kwargs: Any) -> Any:
    """A dataclass field with its documentation and parser in the field's metadata."""
    return dataclasses.field(metadata={"doc": doc, "parse": parse}, **kwargs)


def _from_dict(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, Mapping):
        raise _fail(path, "an object", data)
    values = {}
    for f in dataclasses.fields(cls):
        where = f"{path}.{f.name}" if path else f.name
        if f.name in data:
            values[f.name] = f.metadata["parse"](data[f.name], where)
        elif f.default is dataclasses.MISSING:
            raise SummaryError(f"run summary: missing field '{where}'")
    return cls(**values)


def _plain(value: Any) -> Any:
    """JSON-ready copy: dataclasses become dicts, tuples lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


_metrics = _mapping(_float)


# ----- the records --------------------------------------------------------------------------------
class _Record:
    """``from_dict``/``to_dict`` of a nested record; ``_PATH`` names it in error messages."""

    _PATH: ClassVar[str]

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        return _from_dict(cls, data, cls._PATH)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class ValidationRecord(_Record):
    """One validation during training."""

    _PATH: ClassVar[str] = "valid_history[]"

    epoch: int = _field("0-based epoch after which the validation ran", _int)
    train_seconds: float = _field(
        "cumulative training seconds at this validation (evaluation excluded)", _float
    )
    valid_score: float = _field("the `valid_metric` value", _float)
    valid_result: dict[str, float] = _field("every validation metric, e.g. `ndcg@10`", _metrics)


@dataclass(frozen=True)
class Explanation(_Record):
    """An RKSA explanation for one test user (tokens as in the atomic files)."""

    _PATH: ClassVar[str] = "explanation"

    user: str = _field("the user's token", _str)
    history: tuple[str, ...] = _field("the user's input items, oldest first", _sequence(_str))
    recommended: str = _field("the top-scored item not already in the history", _str)
    attention: tuple[float, ...] = _field(
        "the last block's attention of the last position over the history", _sequence(_float)
    )
    mixture: dict[str, float] = _field(
        "kernel mixture weights r (co-occurrence, item, user)", _mapping(_float)
    )


@dataclass(frozen=True)
class RunSummary:
    """What one run reports (the command line's last stdout line, as JSON)."""

    model: str = _field("the model name given (`RecBole.<Name>` for a shadowed built-in)", _str)
    implementation: str = _field("the fully qualified class that ran", _str)
    dataset: str = _field("the data set name", _str)
    seed: int = _field("`seed`", _int)
    protocol: str = _field(
        "the evaluation mode (`uni100`, `full`; `valid/test` when they differ)", _str
    )
    best_valid_score: float | None = _field(
        "best `valid_metric` value (null: no validation ran)", _optional(_float)
    )
    best_valid_result: dict[str, float] = _field("every metric at the best validation", _metrics)
    test_result: dict[str, float] = _field(
        "test metrics of the best checkpoint (of the last weights without checkpoints)", _metrics
    )
    train_seconds: float = _field("training seconds, evaluation excluded", _float)
    fit_wall_seconds: float = _field("wall seconds of the whole fit, evaluation included", _float)
    epochs: int | None = _field("epochs trained", _optional(_int))
    best_epoch: int | None = _field("0-based epoch of the best validation", _optional(_int))
    seconds_per_epoch: float | None = _field("train_seconds / epochs", _optional(_float))
    peak_memory_mb: float = _field(
        "peak RSS of the process on CPU; the CUDA allocator's peak on a GPU", _float
    )
    valid_history: tuple[ValidationRecord, ...] = _field(
        "every validation (see ValidationRecord)", _sequence(_nested(ValidationRecord))
    )
    config_hash: str = _field("hash of the user-given settings, model and data set", _str)
    versions: dict[str, str] = _field(
        "versions of recbole, torch, numpy, pandas, python", _mapping(_str)
    )
    checkpoint: str | None = _field(
        "path of the best checkpoint (null: not saved)", _optional(_str)
    )
    device: str = _field("torch device, e.g. `cpu`, `cuda:0`", _str)
    # ----- optional fields (default None; add new ones here) -----
    gpu: str | None = _field("the GPU's name on CUDA", _optional(_str), default=None)
    explanation: Explanation | None = _field(
        "RKSA's explanation of the first test user (see Explanation)",
        _optional(_nested(Explanation)),
        default=None,
    )
    log_file: str | None = _field(
        "this run's log file (the whole log, configuration included)", _optional(_str), default=None
    )
    tensorboard_dir: str | None = _field(
        "this run's TensorBoard folder (loss and validation metrics)", _optional(_str), default=None
    )
    world_size: int | None = _field(
        "number of training processes (1: one process; several: `--nproc=N` or torchrun, "
        "the other fields are rank 0's)", _optional(_int), default=None
    )
    stopped_by: str | None = _field(
        "why training ended: `early_stopping` (no validation improvement for more than "
        "`stopping_step` validations), `epoch_cap` (all `epochs` ran) or `one_pass` (a model "
        "fitted in one pass, e.g. Pop)",
        _optional(_str),
        default=None,
    )
    per_user_file: str | None = _field(
        "the .npz of per-user test metrics (`per_user_file`; see evaluation/per_user.py)",
        _optional(_str),
        default=None,
    )
    settings_hash: str | None = _field(
        "hash of the final value of every key the plugin declares for the model "
        "(config/settings_hash.py): changes when a default does",
        _optional(_str),
        default=None,
    )
    schema_version: int = _field(
        "layout version of this summary (`SCHEMA_VERSION`)", _int, default=SCHEMA_VERSION
    )

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise SummaryError(
                f"run summary field 'schema_version': {self.schema_version} is not supported "
                f"(this code reads {SCHEMA_VERSION})"
            )

    @classmethod
    def from_dict(cls, data: Any) -> RunSummary:
        """Check and convert a decoded summary; unknown keys are ignored.

        Raises
        ------
        SummaryError
            If a required field is missing or a field has the wrong type (the message names it).
        """
        if isinstance(data, Mapping) and "schema_version" not in data:
            raise SummaryError("run summary: missing field 'schema_version'")
        return _from_dict(cls, data, "")

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        """:meth:`from_dict` of one JSON object."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SummaryError(f"run summary: not JSON ({exc})") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def to_json(self) -> str:
        """One line of JSON (non-finite numbers become null)."""
        return json.dumps(self.to_dict(), allow_nan=False)


def fields_markdown() -> str:
    """A Markdown table of the summary's fields (the README's section on the JSON summary)."""
    lines = ["| field | meaning |", "| --- | --- |"]
    for cls, prefix in (
        (RunSummary, ""),
        (ValidationRecord, "valid_history[]."),
        (Explanation, "explanation."),
    ):
        for f in dataclasses.fields(cls):
            optional = " (optional, may be absent)" if f.default is None else ""
            lines.append(f"| `{prefix}{f.name}` | {f.metadata['doc']}{optional} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the README's table: python -m recbole_sasrec_ext.contract.summary
    print(fields_markdown())
