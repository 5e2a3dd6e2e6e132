"""A tiny SASRec trained 1 epoch on a generated data set, and its exported bundle (shared by the
tests/test_serving*.py modules through the ``tiny_bundle`` fixture of conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import fast_config, tiny_rows, write_inter

from recbole_sasrec_ext import run
from recbole_sasrec_ext.serving.export import export


def train_tiny(folder: Path, model: str = "SASRec", **extra) -> Path:
    """Checkpoint of ``model`` trained 1 epoch on the tiny data set, in ``folder`` (the run's
    summary beside it: ``folder / "summary.json"``)."""
    data = write_inter(folder / "data", "tiny", tiny_rows())
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        summary = run(model, "tiny", config_dict=fast_config(data, epochs=1, **extra))
    finally:
        os.chdir(cwd)
    (folder / "summary.json").write_text("run output\n" + summary.to_json() + "\n")
    return folder / summary.checkpoint


def tiny_bundle(folder: Path) -> tuple[Path, Path]:
    """(checkpoint, bundle folder) of a tiny SASRec; the bundle's data set is in ``folder``."""
    checkpoint = train_tiny(folder)
    cwd = os.getcwd()
    os.chdir(folder)  # the checkpoint's data_path is relative to where it was trained
    try:
        bundle = export(checkpoint, folder / "bundle", summary=folder / "summary.json")
    finally:
        os.chdir(cwd)
    return checkpoint, bundle
