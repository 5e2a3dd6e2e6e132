"""The model bundle on disk: what ``export`` writes and :func:`read` loads, without RecBole.

A bundle is one folder::

    settings.json        format, model, inference settings (max length, padding side, position
                         order) and the encoder's hyper-parameters
    card.json            the model card: data set, metrics, protocol, versions, date
    items.json           item vocabulary: original token of every internal id (0 = padding)
    popularity.npy       (n_items,) int64 interactions per item in the data set (empty sequences)
    item_embeddings.npy  (n_items, d) float32 (similar items)
    model.onnx           the network (encoder and scoring) for onnxruntime
    weights.pt           weights-only state dict of the pure-PyTorch fallback encoder
    users.json, history_offsets.npy, history_items.npy
                         optional: each user's history (CSR), for ``--all-users``
    titles.json          optional: item token -> title (when the data set has a .item file)

Only numpy and the standard library are imported here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_sasrec_ext.common.errors import PluginError

#: Version tag of the bundle layout.
BUNDLE_FORMAT = "recbole_sasrec_ext.bundle/1"

SETTINGS, CARD, ITEMS, POPULARITY, EMBEDDINGS = (
    "settings.json", "card.json", "items.json", "popularity.npy", "item_embeddings.npy",
)
ONNX_MODEL, TORCH_WEIGHTS = "model.onnx", "weights.pt"
USERS, HISTORY_OFFSETS, HISTORY_ITEMS = "users.json", "history_offsets.npy", "history_items.npy"
TITLES = "titles.json"
REQUIRED = (SETTINGS, CARD, ITEMS, POPULARITY, EMBEDDINGS, ONNX_MODEL, TORCH_WEIGHTS)


@dataclass
class Histories:
    """Each user's item ids in time order, as CSR arrays (memory-mapped)."""

    users: list[str]  # user tokens
    offsets: np.ndarray  # (U + 1,) int64
    items: np.ndarray  # (N,) int32 item ids

    def __len__(self) -> int:
        return len(self.users)

    def of(self, row: int) -> np.ndarray:
        """Item ids (n,) of the user at ``row``."""
        return self.items[self.offsets[row] : self.offsets[row + 1]]


@dataclass
class Bundle:
    """A loaded bundle (everything but the network itself)."""

    path: Path
    settings: dict
    card: dict
    items: list[str]  # token of each item id
    popularity: np.ndarray  # (n_items,) int64
    item_embeddings: np.ndarray  # (n_items, d) float32
    histories: Histories | None
    titles: dict[str, str]  # item token -> title ({} without titles)


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PluginError(f"bundle file {path} cannot be read ({type(exc).__name__})") from None


def read(path: os.PathLike | str) -> Bundle:
    """Load a bundle folder's data; a missing or foreign folder is a one-line
    :class:`PluginError` naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise PluginError(f"bundle not found: {path}")
    for name in REQUIRED:
        if not (path / name).is_file():
            raise PluginError(f"bundle {path} is incomplete: {name} is missing")
    settings = _json(path / SETTINGS)
    if not isinstance(settings, dict) or settings.get("format") != BUNDLE_FORMAT:
        raise PluginError(f"{path / SETTINGS}: not a {BUNDLE_FORMAT} bundle")
    items = _json(path / ITEMS)
    popularity = np.load(path / POPULARITY)
    embeddings = np.load(path / EMBEDDINGS)
    n_items = settings["encoder"]["n_items"]
    if not (len(items) == len(popularity) == len(embeddings) == n_items):
        raise PluginError(f"bundle {path}: items.json, popularity.npy and item_embeddings.npy "
                          f"do not all have n_items = {n_items} rows")
    histories = None
    if (path / USERS).is_file():
        histories = Histories(_json(path / USERS), np.load(path / HISTORY_OFFSETS, mmap_mode="r"),
                              np.load(path / HISTORY_ITEMS, mmap_mode="r"))
    titles = _json(path / TITLES) if (path / TITLES).is_file() else {}
    return Bundle(path, settings, _json(path / CARD), items, popularity, embeddings, histories,
                  titles)


def write_json(path: Path, value: object) -> None:
    """``value`` as indented UTF-8 JSON (no NaN/Infinity: :func:`json.dumps` raises on them)."""
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")
