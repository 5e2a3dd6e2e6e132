"""Writing RecBole atomic files: ``<out_dir>/<name>/<name>.inter`` and ``.yaml``, atomically, and
the :class:`ConversionSummary` of what was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recbole_sasrec_ext.common.atomic_write import atomic_path
from recbole_sasrec_ext.common.paths import DATASET_NAME
from recbole_sasrec_ext.convert.columns import COLUMN_ORDER, FIELD_TYPES, ITEM, RATING, TIME, USER
from recbole_sasrec_ext.convert.errors import PathLike

NAME_RE = DATASET_NAME  # the data set name pattern of the whole plugin


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`write_dataset` (and so :func:`convert`) wrote."""

    name: str
    users: int
    items: int
    interactions: int
    inter_path: Path
    yaml_path: Path

    def __str__(self) -> str:
        return (f"{self.name}: {self.users} users, {self.items} items, "
                f"{self.interactions} interactions -> {self.inter_path}")


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
