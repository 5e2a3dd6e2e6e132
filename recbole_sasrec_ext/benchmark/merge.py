"""Merge the finished runs of one benchmark output folder into another of the same suite.

A suite can be run in pieces in separate folders at once (each folder is locked by its runner)
and combined afterwards: every ``ok`` and complete row of the source's ``results.csv`` replaces the
row of the same run key in the destination (or is added), with its ``histories.jsonl`` entry, its
per-user file and its log; failed or incomplete source rows are left out. A merged run supersedes
the destination's runs of the same model, data set and seed made with other suite settings (another
``config_hash``: the suite's entry for that model was changed): those rows and their histories are
dropped, so the table keeps one row per model and seed, made with the settings now in the suite.
The destination's ``suite.json`` gets the source's commands, and its report is made again. Both
folders are locked while merging; every file is replaced atomically, ``results.csv`` last, so a
merge cut short leaves no row without its files and can simply be run again (merging twice changes
nothing).
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.results import ResultsError, Status
from recbole_sasrec_ext.common.atomic_write import atomic_path


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_folders` did: runs copied, source rows left out, report files written."""

    merged: int
    skipped: int  # failed or incomplete rows of the source
    superseded: int = 0  # destination rows of the same model, data set and seed, other settings
    report: tuple[Path, ...] = ()


def merge_folders(src: Path, dst: Path) -> MergeSummary:
    """Copy the finished runs of output folder ``src`` into ``dst`` and remake ``dst``'s report.

    Raises
    ------
    ResultsError
        If either is not a benchmark output folder, they are the same folder, their suites
        differ, or a runner is writing into either (nothing is written then).
    """
    _check_pair(src, dst)
    with ExitStack() as stack:
        for folder in (src, dst):
            stack.enter_context(results.folder_lock(folder))
        _check_pair(src, dst)  # as it stands now that no runner can change it
        merged, skipped, superseded = _merge_locked(src, dst)
        from recbole_sasrec_ext.benchmark.report import write_report  # matplotlib when needed

        return MergeSummary(merged, skipped, superseded, tuple(write_report(dst)))


def _merge_locked(src: Path, dst: Path) -> tuple[int, int, int]:
    """Merge the files; return (runs merged, source rows left out, destination rows superseded)."""
    src_rows = results.read_rows(src / results.CSV_NAME)
    dst_rows = results.read_rows(dst / results.CSV_NAME)
    src_histories = {h.key: h for h in results.read_histories(src / results.HISTORIES_NAME)}
    dst_histories = results.read_histories(dst / results.HISTORIES_NAME)
    dst_meta = _suite_meta(dst)
    src_meta = _suite_meta(src)

    finished = [r for r in src_rows if r["status"] == Status.OK.value and results.is_complete(r)]
    new_keys = {results.row_key(r) for r in finished}
    stale_rows = [old for row in finished for old in results.superseded(dst_rows, row)
                  if results.row_key(old) not in new_keys]
    stale = {results.row_key(r) for r in stale_rows}
    dst_rows = [r for r in dst_rows if results.row_key(r) not in stale]
    dst_histories = [h for h in dst_histories if h.key not in stale]
    for row in finished:
        for column in ("per_user", "log"):
            _copy_file(src, dst, row.get(column, ""))
        entry = src_histories.get(results.row_key(row))
        if entry is not None:
            results.upsert_history(dst_histories, entry)
        results.upsert_row(dst_rows, dict(row))
    if finished or stale:
        results.write_histories(dst / results.HISTORIES_NAME, dst_histories)
    results.write_meta(dst, _merged_meta(dst_meta, src_meta))
    results.write_rows(dst / results.CSV_NAME, dst_rows)  # last: rows only with their files
    # after the rows: a cut-short merge leaves a file too many, not too few
    results.remove_per_user_files(dst, stale_rows, dst_rows)
    return len(finished), len(src_rows) - len(finished), len(stale)


def _merged_meta(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """``dst``'s suite.json with ``src``'s commands (and models) appended, without duplicates."""
    merged = dict(dst)
    for key in ("commands", "models"):
        merged[key] = list(dict.fromkeys([*dst.get(key, []), *src.get(key, [])]))
    return merged


def _copy_file(src: Path, dst: Path, relative: str) -> None:
    """Copy ``src/relative`` to ``dst/relative`` atomically, if it is a file inside ``src``."""
    if not relative:
        return
    source = src / relative
    if not source.is_file() or not source.resolve().is_relative_to(src.resolve()):
        return
    target = dst / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _check_pair(src: Path, dst: Path) -> None:
    """Both are output folders of one suite, and not the same folder."""
    if src.resolve() == dst.resolve():
        raise ResultsError(f"{dst}: the source and the destination are the same folder")
    names = {folder: _suite_name(folder) for folder in (src, dst)}
    if names[src] != names[dst]:
        raise ResultsError(
            f"{dst / results.SUITE_META_NAME}: suite {names[dst]!r}, but {src} holds suite "
            f"{names[src]!r}: only folders of one suite can be merged"
        )


def _suite_name(folder: Path) -> str:
    if not folder.is_dir():
        raise ResultsError(f"{folder}: no such folder")
    for name in (results.CSV_NAME, results.SUITE_META_NAME):
        if not (folder / name).is_file():
            raise ResultsError(f"{folder / name}: no such file (not a benchmark output folder)")
    name = _suite_meta(folder).get("suite")
    if not isinstance(name, str) or not name:
        raise ResultsError(f"{folder / results.SUITE_META_NAME}: no key 'suite'")
    return name


def _suite_meta(folder: Path) -> dict[str, Any]:
    """``suite.json`` of ``folder``; an unreadable one is a :class:`ResultsError`."""
    path = folder / results.SUITE_META_NAME
    try:
        meta = results.read_meta(folder)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not a benchmark suite file ({exc})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{path}: not a benchmark suite file (not a JSON object)")
    return meta

