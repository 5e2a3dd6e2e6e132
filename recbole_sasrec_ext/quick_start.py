"""Quick start: ``run`` one model on one data set, and ``load_data_and_model`` from a checkpoint.

Never imports ``recbole.quick_start`` (it imports ray).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import resource
import sys
import time
from logging import getLogger

import numpy as np
import torch
from recbole.utils import init_logger, init_seed

from recbole_sasrec_ext import checkpoint
from recbole_sasrec_ext.config import Config
from recbole_sasrec_ext.data import create_dataset, data_preparation
from recbole_sasrec_ext.evaluation import FULL_SEEN_REMOVED
from recbole_sasrec_ext.registry import get_model, get_trainer


def _versions() -> dict:
    import pandas
    import recbole

    return {
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "python": platform.python_version(),
    }


def _protocol(config) -> str:
    """``full``, ``full, seen removed``, ``uni100``, ... (``valid/test`` when the phases differ)."""
    modes = config["eval_args"]["mode"]
    names = [
        FULL_SEEN_REMOVED if mode == "full" and config["filter_seen"] else mode
        for mode in (modes["valid"], modes["test"])
    ]
    return names[1] if names[0] == names[1] else f"{names[0]}/{names[1]}"


def _peak_memory_mb(device) -> float:
    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def config_hash(config) -> str:
    """Hash of the user-given settings (files, dict, command line), model and data set."""
    text = json.dumps(
        {"model": config["model"], "dataset": config["dataset"], **checkpoint.plain(config.external_config_dict)},
        sort_keys=True,
    )
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def build(config):
    """Data set, loaders and model for ``config`` (seeded like RecBole's quick start)."""
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    return dataset, train_data, valid_data, test_data, model


def run(
    model: str,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    read_argv: bool = False,
) -> dict:
    """Train ``model`` on ``dataset``, evaluate the best checkpoint on the test set.

    Parameters
    ----------
    model, dataset : str
        Model name (plugin first; ``RecBole.<Name>`` for a shadowed built-in) and data set name.
    config_file_list, config_dict :
        RecBole's configuration inputs (priority: files < dict < command line).
    saved : bool
        Write checkpoints and evaluate the best one (else the last weights).
    read_argv : bool
        Also read ``--key=value`` from ``sys.argv`` as RecBole does (off by default for library use).

    Returns
    -------
    dict
        The run summary: model, implementation, dataset, seed, protocol, best_valid_score,
        best_valid_result, test_result, train_seconds, epochs, best_epoch, seconds_per_epoch,
        peak_memory_mb, valid_history, config_hash, versions, checkpoint, device.
    """
    argv = sys.argv
    if not read_argv:
        sys.argv = argv[:1]
    try:
        config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    finally:
        sys.argv = argv
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(f"model {config['model']} = {config['implementation']}")
    for note in getattr(config, "notes", []):
        logger.info(note)
    logger.info(config)

    data, train_data, valid_data, test_data, net = build(config)
    logger.info(data)
    logger.info(net)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    show = bool(config["show_progress"])
    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=saved, show_progress=show)
    wall = time.perf_counter() - start
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show)
    logger.info(f"test result: {dict(test_result)}")

    train_seconds = getattr(trainer, "train_seconds", wall)
    epochs = getattr(trainer, "epochs_run", None)
    summary = {
        "model": config["model"],
        "implementation": config["implementation"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "protocol": _protocol(config),
        "best_valid_score": None if best_valid_result is None else float(best_valid_score),
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in test_result.items()},
        "train_seconds": round(float(train_seconds), 3),
        "fit_wall_seconds": round(wall, 3),
        "epochs": epochs,
        "best_epoch": getattr(trainer, "best_epoch", None),
        "seconds_per_epoch": round(train_seconds / epochs, 4) if epochs else None,
        "peak_memory_mb": round(_peak_memory_mb(config["device"]), 1),
        "valid_history": getattr(trainer, "history", []),
        "config_hash": config_hash(config),
        "versions": _versions(),
        "checkpoint": trainer.saved_model_file if saved else None,
        "device": str(config["device"]),
    }
    if getattr(config["device"], "type", "cpu") == "cuda":
        summary["gpu"] = torch.cuda.get_device_name(config["device"])
    explain = getattr(net, "explain_example", None)
    if explain is not None:
        summary["explanation"] = explain(test_data)
    for handler in list(logger.handlers):  # RecBole adds handlers per run; release the log file
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)
    return summary


def load_data_and_model(model_file: str):
    """Rebuild the configuration, data and model of a plugin checkpoint and load its weights.

    Returns
    -------
    (config, model, dataset, train_data, valid_data, test_data)
    """
    state = checkpoint.load(model_file, map_location="cpu")
    saved = state["config"]
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(model=saved["model"], dataset=saved["dataset"], config_dict=dict(saved["external"]))
    finally:
        sys.argv = argv
    init_logger(config)
    dataset, train_data, valid_data, test_data, model = build(config)
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
