"""Checkpoints that hold only tensors and plain data, written atomically, loaded with
``torch.load(weights_only=True)`` (RecBole pickles its whole ``Config``: torch >= 2.6 refuses
to load that, and loading such a file can run arbitrary code)."""

from __future__ import annotations

import enum
import hashlib
import os
import pickle
import random
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_sasrec_ext.common.atomic_write import atomic_path
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.training.other_parameter import decode_other_parameter

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


def plain_config(config) -> dict:
    """The run's settings as plain data: enough to rebuild the ``Config`` (``external``) and to
    read any final value (``final``); ``checkpoint["config"]["model"]`` works as in RecBole."""
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "external": plain(config.external_config_dict),
        "final": plain(config.final_config_dict),
        "cwd": os.getcwd(),  # base of relative paths (data_path) when the checkpoint is used
    }


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


def load(
    path: os.PathLike, map_location=None, formats: tuple[str, ...] = (CHECKPOINT_FORMAT,)
) -> dict:
    """Load a plugin checkpoint with ``weights_only=True``; a missing, unreadable or foreign file
    is a one-line :class:`PluginError`."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # the one-line error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # truncated, not a torch file, or pickled objects other than tensors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:120]
        raise PluginError(
            f"checkpoint {path} cannot be loaded ({first}): "
            "not a complete checkpoint of this plugin"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in formats:
        raise PluginError(f"checkpoint {path} is not a {' or '.join(formats)} checkpoint")
    return state


#: Key of a checkpoint whose run's training ended (early stopping or the epoch cap).
FINISHED_KEY = "finished"


def mark_finished(path: os.PathLike, epochs_run: int) -> None:
    """Record in the checkpoint at ``path`` that its run's training ended after ``epochs_run``
    epochs (rewritten atomically)."""
    state = load(path, map_location="cpu")
    state[FINISHED_KEY] = {"epochs_run": int(epochs_run)}
    save_atomic(state, path)


def check_resumable(path: os.PathLike, state: dict) -> None:
    """Raise :class:`PluginError` when the checkpoint's run has finished (nothing to resume)."""
    finished = state.get(FINISHED_KEY)
    if finished:
        raise PluginError(
            f"--resume={path}: this run finished (after {finished.get('epochs_run', '?')} "
            "epochs): there is nothing to resume; start a new run to train again"
        )


def external_config(saved: dict) -> dict:
    """The user's settings of a checkpoint's run (``saved`` is its ``config``), a relative
    ``data_path`` made absolute against the folder the run was started in, so the checkpoint
    works from any folder."""
    external = dict(saved["external"])
    data_path, cwd = external.get("data_path"), saved.get("cwd")
    if isinstance(data_path, str) and cwd and not Path(data_path).is_absolute():
        external["data_path"] = str(Path(cwd) / data_path)
    return external


def run_config(path: os.PathLike, state: dict) -> dict:
    """The checkpoint's ``config`` (model, data set, the user's settings); a checkpoint without
    one is a :class:`PluginError`."""
    saved = state.get("config")
    if not isinstance(saved, dict) or not all(
        isinstance(saved.get(key), want)
        for key, want in (("model", str), ("dataset", str), ("external", dict))
    ):
        raise PluginError(
            f"checkpoint {path} has no run configuration (model, dataset and settings): "
            "not a complete checkpoint of this plugin"
        )
    return saved


def load_weights(model: torch.nn.Module, state: dict, path: os.PathLike | None = None) -> None:
    """Put a checkpoint's weights (``state_dict``, RecBole's ``other_parameter`` as encoded by
    :func:`recbole_sasrec_ext.training.other_parameter.encode_other_parameter`) into ``model``;
    weights that do not fit the model are a :class:`PluginError` naming ``path``."""
    try:
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise PluginError(
            f"checkpoint {path or ''}: its weights do not fit the model ({detail})"
        ) from None
    model.load_other_parameter(decode_other_parameter(state.get("other_parameter")))


def data_fingerprint(dataset) -> dict:
    """Identity of the data a model was trained on: user and item counts, a hash of the token maps
    (original id of every internal id) and a hash of the interactions."""
    digest = {}
    for key, field in (("users", dataset.uid_field), ("items", dataset.iid_field)):
        tokens = dataset.field2id_token.get(field) if field else None
        text = "\x1f".join(map(str, tokens)) if tokens is not None else ""
        digest[key] = int(dataset.num(field)) if field else 0
        digest[f"{key}_tokens"] = hashlib.sha1(text.encode()).hexdigest()[:16]
    pairs = getattr(dataset, "user_item_pairs", None)
    if pairs is None:
        inter = dataset.inter_feat
        pairs = (inter[dataset.uid_field].numpy(), inter[dataset.iid_field].numpy())
    h = hashlib.sha1()
    for array in pairs:
        h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    digest["interactions"] = len(pairs[0])
    digest["interactions_hash"] = h.hexdigest()[:16]
    return digest


def check_fingerprint(path: os.PathLike, saved: dict | None, current: dict) -> None:
    """Raise :class:`PluginError` (one line) when a checkpoint was trained on other data."""
    if saved is None:
        raise PluginError(
            f"checkpoint {path} has no data fingerprint (written by an older version)"
        )
    if saved != current:
        diff = [k for k in current if saved.get(k) != current[k]]
        detail = ", ".join(f"{k} {saved.get(k)} vs {current[k]}" for k in diff[:3])
        raise PluginError(f"checkpoint {path} was trained on other data ({detail})")


def rng_state(loader_generator: torch.Generator | None = None) -> dict:
    """Python, numpy, torch (CPU and CUDA) and the training loader's generator states."""
    state = {
        "python": [plain(x) for x in random.getstate()],
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def set_rng_state(state: dict, loader_generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"].cpu())


def _numpy_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
