"""RecBole's own trainers and ``load_data_and_model`` with weights-only checkpoints.

RecBole 1.2.1 pickles its ``Config`` and the models' extra objects (``other_parameter()``: scipy
matrices, numpy arrays, sub-modules, defaultdicts) into checkpoints; torch >= 2.6 loads with
``weights_only=True`` and refuses them. The replacements installed here by
:mod:`recbole_sasrec_ext.compat` write what the plugin's trainer writes (tensors and plain data,
atomically, the same ``config`` layout) and load with ``weights_only=True``; ``weights_only`` is
never turned off. The plugin's ``PluginTrainer`` overrides these methods and is not affected
(its ``evaluate`` calls RecBole's with ``load_best_model=False``, which runs RecBole's unchanged).
"""

from __future__ import annotations

import collections
import os
import sys

import numpy as np
import torch

from recbole_sasrec_ext import checkpoint

#: Format tag of checkpoints written by RecBole's trainers through this module.
RECBOLE_CHECKPOINT_FORMAT = "recbole_sasrec_ext/recbole-trainer/1"
_FORMATS = (RECBOLE_CHECKPOINT_FORMAT,)
_TAG = "__recbole_sasrec_ext__"
_SKIP = object()
_FACTORIES = {"list": list, "dict": dict, "set": set, "int": int, "float": float}


def plain_config(config) -> dict:
    """The run's settings as plain data: enough to rebuild the ``Config`` (``external``) and to
    read any final value (``final``); ``checkpoint["config"]["model"]`` works as in RecBole."""
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "external": checkpoint.plain(config.external_config_dict),
        "final": checkpoint.plain(config.final_config_dict),
        "cwd": os.getcwd(),  # base of relative paths (data_path) when the checkpoint is used
    }


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


load_weights = checkpoint.load_weights  # one implementation for both trainers


# --- replacements for recbole.trainer.trainer ----------------------------------------------
def _checkpoint_state(trainer, epoch, **fields) -> dict:
    """What every RecBole checkpoint the plugin writes holds: format, plain config, epoch, then
    ``fields`` (the trainer-specific entries)."""
    return {
        "format": RECBOLE_CHECKPOINT_FORMAT,
        "config": plain_config(trainer.config),
        "epoch": int(epoch),
        **fields,
    }


def _training_state(trainer, epoch, **fields) -> dict:
    """:func:`_checkpoint_state` plus what ``resume_checkpoint`` reads back: step and best score."""
    return _checkpoint_state(
        trainer,
        epoch,
        cur_step=int(trainer.cur_step),
        best_valid_score=float(trainer.best_valid_score),
        **fields,
    )


def _save_checkpoint(self, epoch, verbose=True, **kwargs):
    """``Trainer._save_checkpoint``: tensors and plain data, written atomically."""
    from recbole.utils import set_color

    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    state = _training_state(
        self,
        epoch,
        state_dict=self.model.state_dict(),
        other_parameter=encode_other_parameter(self.model),
        optimizer=self.optimizer.state_dict(),
    )
    checkpoint.save_atomic(state, saved_model_file)
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def resume_checkpoint(self, resume_file):
    """``Trainer.resume_checkpoint``, loading weights-only."""
    resume_file = str(resume_file)
    self.saved_model_file = resume_file
    state = checkpoint.load(resume_file, map_location=self.device, formats=_FORMATS)
    self.start_epoch = state["epoch"] + 1
    self.cur_step = state["cur_step"]
    self.best_valid_score = state["best_valid_score"]
    if str(state["config"]["model"]).lower() != str(self.config["model"]).lower():
        self.logger.warning(
            "Architecture configuration given in config file is different from that of checkpoint. "
            "This may yield an exception while state_dict is being loaded."
        )
    load_weights(self.model, state)
    self.optimizer.load_state_dict(state["optimizer"])
    self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


def _evaluate_loading_weights_only(original):
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """``Trainer.evaluate``; the best model is loaded weights-only, then RecBole's runs."""
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            state = checkpoint.load(checkpoint_file, map_location=self.device, formats=_FORMATS)
            load_weights(self.model, state)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return original(
            self,
            eval_data,
            load_best_model=False,
            model_file=model_file,
            show_progress=show_progress,
        )

    return evaluate


def save_pretrained_model(self, epoch, saved_model_file):
    """``PretrainTrainer.save_pretrained_model``: tensors and plain data (S3Rec and RaCT load
    the file with ``torch.load``, weights-only by default on torch >= 2.6)."""
    state = _checkpoint_state(
        self,
        epoch,
        state_dict=self.model.state_dict(),
        optimizer=self.optimizer.state_dict(),
        other_parameter=encode_other_parameter(self.model),
    )
    checkpoint.save_atomic(state, saved_model_file)
    self.saved_model_file = saved_model_file


def _save_decision_tree_checkpoint(self, epoch):
    """``DecisionTreeTrainer._save_checkpoint``: its ``state_dict`` is the booster's file name."""
    state = _training_state(self, epoch, state_dict=str(self.temp_best_file), other_parameter=None)
    checkpoint.save_atomic(state, self.saved_model_file)


def patch_trainers(module) -> None:
    """Install the replacements into ``recbole.trainer.trainer`` (idempotent)."""
    from recbole_sasrec_ext.compat import replace_attr

    fix = "torch_weights_only"
    replace_attr(module.Trainer, "_save_checkpoint", _save_checkpoint, fix)
    replace_attr(module.Trainer, "resume_checkpoint", resume_checkpoint, fix)
    original = module.Trainer.__dict__["evaluate"]
    if getattr(original, "_recbole_sasrec_ext_fix", None) is None:
        replace_attr(module.Trainer, "evaluate", _evaluate_loading_weights_only(original), fix)
    replace_attr(module.PretrainTrainer, "save_pretrained_model", save_pretrained_model, fix)
    replace_attr(
        module.DecisionTreeTrainer, "_save_checkpoint", _save_decision_tree_checkpoint, fix
    )


# --- replacement for recbole.quick_start.load_data_and_model -------------------------------
def load_data_and_model(model_file):
    """``recbole.quick_start.load_data_and_model`` for weights-only checkpoints: the ``Config``
    is rebuilt from the saved settings (RecBole's ``Config``; for plugin models use
    ``recbole_sasrec_ext.load_data_and_model``)."""
    from logging import getLogger

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_logger, init_seed

    state = checkpoint.load(model_file, formats=_FORMATS)
    saved = state["config"]
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(
            model=saved["model"], dataset=saved["dataset"], config_dict=dict(saved["external"])
        )
    finally:
        sys.argv = argv
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    load_weights(model, state)
    return config, model, dataset, train_data, valid_data, test_data


def patch_quick_start(module) -> None:
    """Install :func:`load_data_and_model` into ``recbole.quick_start`` (and its package)."""
    from recbole_sasrec_ext.compat import replace_attr

    if hasattr(module, "load_data_and_model"):
        replace_attr(module, "load_data_and_model", load_data_and_model, "torch_weights_only")
