"""Shared fixtures: tiny generated atomic data sets (no downloads, seconds to train on)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_inter(folder: Path, name: str, rows: list[tuple],
                header: str = "user_id:token\titem_id:token\ttimestamp:float") -> Path:
    """Write ``<folder>/<name>/<name>.inter`` and return ``folder`` (the data_path)."""
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    (target / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def tiny_rows(
    n_users: int = 40, n_items: int = 30, max_len: int = 25, seed: int = 0
) -> list[tuple]:
    """Users with 1..max_len interactions (some with 1, 2, 3), distinct items per user, increasing
    times with ties, rows shuffled (so the time field, not the file order, orders them)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        n = [1, 2, 3][u - 1] if u <= 3 else int(rng.integers(4, max_len + 1))
        items = rng.choice(np.arange(1, n_items + 1), size=min(n, n_items), replace=False)
        times = np.cumsum(rng.integers(0, 3, size=len(items)))  # ties (0 steps) included
        rows += [(u, int(i), int(t)) for i, t in zip(items, times)]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def tiny_suite_yaml(folder: Path, file_name: str, *, description: str, seeds: list[int],
                    models: dict, n_users: int, max_len: int, max_item_list_length: int,
                    common: dict | None = None, tail: str = "") -> Path:
    """A benchmark suite file ``folder/file_name`` on a tiny data set ``tiny`` written under
    ``folder/data``: leave-one-out, full ranking, HR/NDCG@5, ``models`` as given, ``tail`` (yaml
    text, e.g. a search block) appended."""
    data = write_inter(folder / "data", "tiny", tiny_rows(n_users=n_users, max_len=max_len))
    suite = {
        "description": description,
        "timeout_s": 600,
        "seeds": list(seeds),
        "common": {
            "data_path": str(data),
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
            "metrics": ["Hit", "NDCG"], "topk": [5], "valid_metric": "NDCG@5",
            "show_progress": False, **(common or {}),
            "MAX_ITEM_LIST_LENGTH": max_item_list_length,
        },
        "datasets": {"tiny": {}},
        "models": models,
    }
    path = folder / file_name
    path.write_text(yaml.safe_dump(suite, sort_keys=False) + tail, encoding="utf-8")
    return path


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """data_path with data set ``tiny``."""
    return write_inter(tmp_path / "data", "tiny", tiny_rows())


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run every test in its own working directory (checkpoints, logs) with a clean argv."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])


def fast_config(data_path: Path, **extra) -> dict:
    """Config dict for seconds-long runs on the tiny data set."""
    base = {
        "data_path": str(data_path),
        "show_progress": False,
        "epochs": 2,
        "MAX_ITEM_LIST_LENGTH": 10,
        "train_batch_size": 16,
        "eval_batch_size": 64,
        "state": "WARNING",
        "hidden_size": 16,
        "inner_size": 16,
        "embedding_size": 16,
    }
    base.update(extra)
    return base


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, bundle folder) of a tiny SASRec trained 1 epoch (tests/serving_bundle.py)."""
    from serving_bundle import tiny_bundle as make

    return make(tmp_path_factory.mktemp("serving"))
