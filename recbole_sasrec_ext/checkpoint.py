"""Checkpoints that hold only tensors and plain data, written atomically, loaded with
``torch.load(weights_only=True)`` (RecBole pickles its whole ``Config``: torch >= 2.6 refuses
to load that, and loading such a file can run arbitrary code)."""

from __future__ import annotations

import enum
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from recbole_sasrec_ext.atomic_write import atomic_path

#: Version tag of the checkpoint layout.
CHECKPOINT_FORMAT = "recbole_sasrec_ext/1"


def plain(value: Any) -> Any:
    """A copy of ``value`` made of str/int/float/bool/None/list/dict only (enums and devices
    become strings) so that ``weights_only=True`` can load it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return str(value.name)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return str(value)


def unique_checkpoint_path(checkpoint_dir: str, model: str, dataset: str) -> Path:
    """``<dir>/<model>-<dataset>-<YYYYmmdd-HHMMSS>-<pid>-<random>.pth``: unique even for runs
    started in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{model}-{dataset}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.pth"
    return Path(checkpoint_dir) / name


def save_atomic(state: dict, path: os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees a
    half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: os.PathLike, map_location=None) -> dict:
    """Load a plugin checkpoint with ``weights_only=True``."""
    return torch.load(path, map_location=map_location, weights_only=True)


def load_weights(model: torch.nn.Module, state: dict) -> None:
    """Put a checkpoint's weights (``state_dict``, RecBole's ``other_parameter``) into ``model``."""
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
