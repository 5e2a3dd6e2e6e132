"""Checks of RecBole atomic files before RecBole reads them, so that a malformed file is an error
that names the file and line instead of a pandas traceback or silently shifted columns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_sasrec_ext.errors import PluginError

#: RecBole's feature types (``recbole.utils.FeatureType`` values).
FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")
#: Atomic file suffixes the plugin checks when present.
CHECKED_SUFFIXES = ("inter", "user", "item")


def check_atomic_file(path: Path, separator: str = "\t", encoding: str = "utf-8") -> None:
    """Raise :class:`PluginError` naming ``path`` and the line if the file is malformed.

    Checked: a ``name:type`` header with RecBole's types and distinct names, the same number of
    columns on every non-blank line, and numbers (or nothing) in ``float`` fields.
    """
    try:
        text = Path(path).read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise PluginError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise PluginError(f"{path}:1: missing header (expected fields like 'user_id:token')")
    names, types = _parse_header(path, lines[0], separator)

    body = lines[1:]
    line_numbers = np.array([i + 2 for i, line in enumerate(body) if line.strip()])
    rows = [line for line in body if line.strip()]
    if not rows:
        raise PluginError(f"{path}: no data rows after the header")
    counts = np.array([row.count(separator) + 1 for row in rows])
    bad = np.flatnonzero(counts != len(names))
    if bad.size:
        i = bad[0]
        raise PluginError(
            f"{path}:{line_numbers[i]}: expected {len(names)} columns "
            f"({', '.join(names)}), found {counts[i]}"
        )

    float_columns = [i for i, t in enumerate(types) if t == "float"]
    if not float_columns:
        return
    table = pd.read_csv(
        Path(path), sep=separator, header=None, skiprows=1, dtype=str, usecols=float_columns,
        keep_default_na=False, quoting=csv.QUOTE_NONE, encoding=encoding, skip_blank_lines=True,
        engine="c",
    )
    for column in float_columns:
        raw = table[column].str.strip()
        parsed = pd.to_numeric(raw, errors="coerce")
        invalid = np.flatnonzero(parsed.isna().to_numpy() & (raw != "").to_numpy())
        if invalid.size:
            i = invalid[0]
            raise PluginError(
                f"{path}:{line_numbers[i]}: field '{names[column]}' (float) is not a number: "
                f"{raw.iloc[i]!r}"
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


def check_dataset_files(data_path: str, dataset: str, load_col, separator: str, encoding: str) -> None:
    """Check the atomic files RecBole will read for ``dataset`` in ``data_path``."""
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
            check_atomic_file(file, separator, encoding)
