"""The benchmark's files: ``results.csv`` rows, ``histories.jsonl`` and ``suite.json``, written
atomically.

``results.csv`` has one row per run (see ``LEAD_COLUMNS``, ``test_<metric>`` columns,
``TAIL_COLUMNS``). ``profile`` is the suite's run budget (empty without profiles); ``stopped_by``
says why training ended: ``early_stopping``, ``epoch_cap``, ``one_pass`` (Pop) or ``timeout``. A
file written before these columns existed is migrated when read (:func:`inferred_stopped_by`; the
next write adds the columns); where the cause cannot be inferred, ``stopped_by`` stays empty and the
report says "not recorded". ``histories.jsonl`` holds what does not fit a csv cell: each run's
``valid_history`` and ``explanation`` (:class:`HistoryEntry`). ``suite.json`` records the suite's
description, notes and model order and the command used, for the report's header and notes.
Every file is rewritten whole to a temporary file and moved into place
(:mod:`recbole_sasrec_ext.common.atomic_write`), so a crash never leaves a partial file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from recbole_sasrec_ext.common.atomic_write import atomic_write_text
from recbole_sasrec_ext.contract.summary import Explanation, RunSummary, ValidationRecord

CSV_NAME = "results.csv"
HISTORIES_NAME = "histories.jsonl"
SUITE_META_NAME = "suite.json"
LOGS_DIR = "logs"
METRIC_PREFIX = "test_"

#: Column holding :func:`row_checksum` (the last one: a cut inside any cell changes it).
CHECK_COLUMN = "check"

LEAD_COLUMNS = (
    "model", "implementation", "dataset", "seed", "protocol", "profile", "status", "stopped_by",
    "error",
)
# Run summary fields of the same name as their column (the report's cost columns).
_COST_FIELDS = (
    "best_valid_score",
    "best_epoch",
    "epochs",
    "train_seconds",
    "seconds_per_epoch",
    "peak_memory_mb",
)
TAIL_COLUMNS = (
    *_COST_FIELDS,
    "config_hash",  # hash of the suite's overrides for this run: part of the resume key
    "run_config_hash",  # the run's own "config_hash" (of its final config), when it reports one
    "settings_hash",  # the run's "settings_hash": every declared key's final value (defaults too)
    "versions",
    "date",
    "hardware",
    "overrides",  # JSON of the suite's overrides for this run
    "checkpoint",
    "log",
    "per_user",  # the run's per-user test metrics (.npz), relative to the output folder
    CHECK_COLUMN,  # checksum of the row's other cells, last: a row cut short never counts
)
# Fields of the run summary copied as they are into the column of the same name.
SUMMARY_SCALAR_FIELDS = ("implementation", *_COST_FIELDS, "checkpoint")
# Families of metrics in the order the report shows them; others follow alphabetically.
METRIC_ORDER = ("hit", "ndcg", "mrr", "recall", "precision", "map")

Row = dict[str, str]
RunKey = tuple[str, str, int, str]


class ResultsError(ValueError):
    """An output folder whose files are not the benchmark's; the message names the file."""


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``histories.jsonl``: a run's key, validation history and explanation."""

    model: str
    dataset: str
    seed: int
    config_hash: str
    valid_history: tuple[ValidationRecord, ...]
    explanation: Explanation | None

    @property
    def key(self) -> RunKey:
        return (self.model, self.dataset, self.seed, self.config_hash)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "seed": self.seed,
            "config_hash": self.config_hash,
            "valid_history": [r.to_dict() for r in self.valid_history],
            "explanation": None if self.explanation is None else self.explanation.to_dict(),
        }


def metric_sort_key(metric: str) -> tuple[int, str, int]:
    """``hit@10`` before ``ndcg@10`` before ``mrr@10``; within a family by cut-off."""
    family, _, k = metric.lower().partition("@")
    rank = METRIC_ORDER.index(family) if family in METRIC_ORDER else len(METRIC_ORDER)
    return (rank, family, int(k) if k.isdigit() else 0)


def metric_columns(rows: Iterable[Mapping[str, str]]) -> list[str]:
    """The ``test_<metric>`` columns present in ``rows``, in report order."""
    names = {c for row in rows for c in row if c.startswith(METRIC_PREFIX)}
    return sorted(names, key=lambda c: metric_sort_key(c[len(METRIC_PREFIX) :]))


def columns_for(rows: list[Mapping[str, str]]) -> list[str]:
    return [*LEAD_COLUMNS, *metric_columns(rows), *TAIL_COLUMNS]


def format_cell(value: Any) -> str:
    """A csv cell: floats keep full precision (``repr``), None is empty, containers become JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return " ".join(str(value).split())  # one line


def format_versions(versions: Any) -> str:
    """``{"recbole": "1.2.1", "torch": "2.5"}`` -> ``recbole=1.2.1 torch=2.5``."""
    if isinstance(versions, Mapping):
        return " ".join(f"{k}={v}" for k, v in versions.items())
    return format_cell(versions)


def row_key(row: Mapping[str, str]) -> RunKey:
    return (row["model"], row["dataset"], int(row["seed"]), row["config_hash"])


def make_row(
    *,
    model: str,
    dataset: str,
    seed: int,
    protocol: str,
    config_hash: str,
    overrides: Mapping[str, Any],
    status: Status,
    error: str,
    result: RunSummary | None,
    hardware: str,
    date: str,
    log: str,
    profile: str = "",
    stopped_by: str = "",
    per_user: str = "",
) -> Row:
    """One csv row from a run's spec and its summary (``None`` when it failed)."""
    row: Row = {
        "model": model,
        "dataset": dataset,
        "seed": str(seed),
        "protocol": format_cell((result.protocol if result else "") or protocol),
        "profile": profile,
        "status": status.value,
        "stopped_by": stopped_by or format_cell(result.stopped_by if result else None),
        "per_user": per_user,
        "error": format_cell(error),
        "config_hash": config_hash,
        "run_config_hash": format_cell(result.config_hash if result else None),
        "settings_hash": format_cell(result.settings_hash if result else None),
        "versions": format_versions(result.versions if result else None),
        "date": date,
        "hardware": hardware,
        "overrides": format_cell(dict(overrides)),
        "log": log,
    }
    for field in SUMMARY_SCALAR_FIELDS:
        row[field] = format_cell(getattr(result, field) if result else None)
    for metric, value in result.test_result.items() if result else ():
        row[f"{METRIC_PREFIX}{metric.lower()}"] = format_cell(value)
    return row


def read_rows(path: Path) -> list[Row]:
    """Rows of a ``results.csv`` (empty list when it does not exist).

    A row that does not parse completely (fewer or more cells than columns, a seed that is not an
    integer, a last line without its line end, or cells that do not match the row's ``check``
    column: a write cut short or an edited row) is left out, so the runner runs it again. Files
    written before the ``check`` column existed are read without it.

    Raises
    ------
    ResultsError
        If the file lacks a column the resume key needs.
    """
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): not a benchmark "
            "results file"
        ) from None
    if "\x00" in text:
        raise ResultsError(f"{path}: contains NUL bytes: not a benchmark results file")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the last line was cut short
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"model", "dataset", "seed", "status", "config_hash"} - set(reader.fieldnames or [])
    if missing:
        raise ResultsError(f"{path}: not a benchmark results file (no column {sorted(missing)})")
    migrate = "stopped_by" not in (reader.fieldnames or [])
    checked = CHECK_COLUMN in (reader.fieldnames or [])
    rows = []
    for row in reader:
        if None in row or None in row.values():
            continue
        if not row["seed"].lstrip("-").isdigit():
            continue
        row = {k: v or "" for k, v in row.items()}
        if checked and row[CHECK_COLUMN] != row_checksum(row):
            continue
        if migrate:
            row.setdefault("profile", "")
            row["stopped_by"] = inferred_stopped_by(row)
        rows.append(row)
    return rows


def inferred_stopped_by(row: Mapping[str, str]) -> str:
    """``stopped_by`` of a row written before the column existed: an ok run that trained fewer
    epochs than its ``epochs`` override early-stopped, one that trained all of them hit the cap
    (RecBole's loop ends no other way); "" when the override or the count is missing."""
    try:
        cap = json.loads(row.get("overrides") or "{}").get("epochs")
        trained = int(row.get("epochs") or "")
    except (ValueError, AttributeError):
        return ""
    if row.get("status") != Status.OK.value or not isinstance(cap, int):
        return ""
    return "early_stopping" if trained < cap else "epoch_cap"


def is_complete(row: Mapping[str, str]) -> bool:
    """An ``ok`` row whose test metrics are all numbers (a finished run need not run again)."""
    metrics = [v for k, v in row.items() if k.startswith(METRIC_PREFIX) and v != ""]
    try:
        return bool(metrics) and all(math.isfinite(float(v)) for v in metrics)
    except ValueError:
        return False


def row_checksum(row: Mapping[str, str]) -> str:
    """Checksum of a row's non-empty cells other than ``check`` (column order and empty columns
    added later do not change it)."""
    cells = {k: v for k, v in row.items() if k != CHECK_COLUMN and v not in ("", None)}
    text = json.dumps(cells, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def write_rows(path: Path, rows: list[Row]) -> None:
    for row in rows:
        row[CHECK_COLUMN] = row_checksum(row)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_for(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def superseded(rows: Iterable[Row], row: Row) -> list[Row]:
    """The rows of ``rows`` that ``row`` replaces as a finished run: the same model, data set,
    seed and profile made with other suite settings (another ``config_hash``). Rows of another
    profile (another run budget) are kept beside it."""
    key, profile = row_key(row), row.get("profile", "")
    return [r for r in rows if row_key(r)[:3] == key[:3] and row_key(r) != key
            and r.get("profile", "") == profile]


def remove_per_user_files(folder: Path, removed: Iterable[Row], kept: Iterable[Row]) -> None:
    """Delete the per-user files of ``removed`` rows that lie inside ``folder`` and that no row
    of ``kept`` names."""
    names = {r.get("per_user", "") for r in kept}
    for row in removed:
        relative = row.get("per_user", "")
        path = folder / relative
        if (relative and relative not in names and path.is_file()
                and path.resolve().is_relative_to(folder.resolve())):
            path.unlink()


def upsert_row(rows: list[Row], row: Row) -> None:
    """Replace the row with the same run key in place, or append."""
    for i, old in enumerate(rows):
        if row_key(old) == row_key(row):
            rows[i] = row
            return
    rows.append(row)


def read_histories(path: Path) -> list[HistoryEntry]:
    """Entries of ``histories.jsonl`` (empty list when it does not exist).

    Raises
    ------
    ResultsError
        If a line is not an entry; the message names the file, the line and the field.
    """
    if not path.is_file():
        return []
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            entries.append(
                HistoryEntry(
                    model=str(data["model"]),
                    dataset=str(data["dataset"]),
                    seed=int(data["seed"]),
                    config_hash=str(data["config_hash"]),
                    valid_history=tuple(
                        ValidationRecord.from_dict(r) for r in data["valid_history"]
                    ),
                    explanation=None
                    if data["explanation"] is None
                    else Explanation.from_dict(data["explanation"]),
                )
            )
        except KeyError as exc:
            raise ResultsError(f"{path}:{lineno}: no field {exc}") from None
        except (ValueError, TypeError) as exc:  # JSONDecodeError and SummaryError are ValueErrors
            raise ResultsError(f"{path}:{lineno}: {exc}") from None
    return entries


def history_entry(key: RunKey, result: RunSummary) -> HistoryEntry:
    """The ``histories.jsonl`` entry of one run."""
    model, dataset, seed, config_hash = key
    return HistoryEntry(model, dataset, seed, config_hash, result.valid_history, result.explanation)


def upsert_history(entries: list[HistoryEntry], entry: HistoryEntry) -> None:
    """Replace the entry with the same run key in place, or append."""
    for i, old in enumerate(entries):
        if old.key == entry.key:
            entries[i] = entry
            return
    entries.append(entry)


def write_histories(path: Path, entries: Iterable[HistoryEntry]) -> None:
    lines = (json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in entries)
    atomic_write_text(path, "".join(lines))


#: Lock file of an output folder: one runner writes into a folder at a time.
LOCK_NAME = ".lock"


@contextmanager
def folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock (``fcntl.flock``, released when the process ends, however
    it ends) while writing into it; another holder is a :class:`ResultsError` naming its pid."""
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until the block ends)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ResultsError(
                f"{out_dir}: another benchmark runner (pid {holder}) is writing into this folder; "
                "wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def read_meta(out_dir: Path) -> dict[str, Any]:
    path = out_dir / SUITE_META_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_meta(out_dir: Path, meta: Mapping[str, Any]) -> None:
    atomic_write_text(out_dir / SUITE_META_NAME, json.dumps(meta, indent=2) + "\n")
