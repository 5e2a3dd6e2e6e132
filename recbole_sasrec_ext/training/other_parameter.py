"""A RecBole model's ``other_parameter()`` (scipy matrices, numpy arrays, sub-modules,
defaultdicts) as tensors and plain data, so that a checkpoint loads with ``weights_only=True``."""

from __future__ import annotations

import collections
import sys

import numpy as np
import torch

_TAG = "__recbole_sasrec_ext__"
_SKIP = object()
_FACTORIES = {"list": list, "dict": dict, "set": set, "int": int, "float": float}


def _encode(value, model, where: str):
    if isinstance(value, np.generic):  # before float: np.float64 is a float
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {_TAG: "ndarray", "data": torch.from_numpy(np.ascontiguousarray(value))}
    if "scipy.sparse" in sys.modules and sys.modules["scipy.sparse"].issparse(value):
        coo = value.tocoo()
        return {
            _TAG: "sparse",
            "format": value.format,
            "row": torch.from_numpy(np.asarray(coo.row, dtype=np.int64)),
            "col": torch.from_numpy(np.asarray(coo.col, dtype=np.int64)),
            "data": torch.from_numpy(np.ascontiguousarray(coo.data)),
            "shape": [int(n) for n in value.shape],
        }
    if isinstance(value, torch.nn.Module):
        if any(value is m for m in model.modules()):
            return {_TAG: "module_in_state_dict"}
    elif isinstance(value, collections.defaultdict):
        factory = value.default_factory.__name__ if value.default_factory else None
        if factory is None or factory in _FACTORIES:
            items = {_key(k, where): _encode(v, model, where) for k, v in value.items()}
            return {_TAG: "defaultdict", "factory": factory, "items": items}
    elif isinstance(value, dict):
        return {_key(k, where): _encode(v, model, f"{where}[{k!r}]") for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        items = [_encode(v, model, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(
        f"other_parameter {where}: a {type(value).__name__} cannot be saved in a weights-only "
        "checkpoint"
    )


def _key(key, where: str):
    if isinstance(key, np.generic):
        key = key.item()
    if key == _TAG or not isinstance(key, (str, int, float, bool)):
        raise TypeError(f"other_parameter {where}: key {key!r} cannot be saved weights-only")
    return key


def _decode(value):
    if isinstance(value, dict) and _TAG in value:
        kind = value[_TAG]
        if kind == "ndarray":
            return value["data"].numpy()
        if kind == "sparse":
            import scipy.sparse as sp

            data = (value["data"].numpy(), (value["row"].numpy(), value["col"].numpy()))
            return sp.coo_matrix(data, shape=tuple(value["shape"])).asformat(value["format"])
        if kind == "module_in_state_dict":
            return _SKIP
        if kind == "defaultdict":
            factory = _FACTORIES.get(value["factory"])
            return collections.defaultdict(
                factory, {k: _decode(v) for k, v in value["items"].items()}
            )
        raise ValueError(f"unknown other_parameter entry {kind!r}")
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    return value


def encode_other_parameter(model):
    """``model.other_parameter()`` as tensors and plain data (``None`` when the model has none).
    Sub-modules of the model are restored by its ``state_dict`` and are only marked."""
    other = model.other_parameter()
    if other is None:
        return None
    return {name: _encode(value, model, name) for name, value in other.items()}


def decode_other_parameter(encoded):
    """What :func:`encode_other_parameter` encoded, for ``model.load_other_parameter``."""
    if encoded is None:
        return None
    decoded = {name: _decode(value) for name, value in encoded.items()}
    return {name: value for name, value in decoded.items() if value is not _SKIP}
