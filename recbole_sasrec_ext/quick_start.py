"""Quick start: ``run`` one model on one data set, and ``load_data_and_model`` from a checkpoint.

Never imports ``recbole.quick_start`` (it imports ray).
"""

from __future__ import annotations

import hashlib
import json
import platform
import resource
import sys
import time
import warnings
from logging import getLogger

import numpy as np
import torch
from recbole.utils import init_seed

from recbole_sasrec_ext import checkpoint, console
from recbole_sasrec_ext.argv import swapped_argv
from recbole_sasrec_ext.config import Config
from recbole_sasrec_ext.data import create_dataset, data_preparation
from recbole_sasrec_ext.errors import PluginError
from recbole_sasrec_ext.evaluation import FULL_SEEN_REMOVED
from recbole_sasrec_ext.registry import get_model, get_trainer
from recbole_sasrec_ext.summary import Explanation, RunSummary, ValidationRecord


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
        {
            "model": config["model"],
            "dataset": config["dataset"],
            **checkpoint.plain(config.external_config_dict),
        },
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


def start_logging(config, verbose: bool = False) -> console.RunLog:
    """The one place a run's logging starts (after every input was validated)."""
    return console.setup(config, verbose)


def _log_warnings(caught: list) -> None:
    """Write the warnings held back while validating into the (now started) log."""
    for w in caught:  # as logging.captureWarnings would have logged them (console filters them)
        text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
        getLogger("py.warnings").warning(text.rstrip())


def _resume_inputs(resume: str, model: str | None, dataset: str | None, config_dict: dict | None):
    """Model, data set and config dict of a checkpoint's run (``config_dict`` on top)."""
    saved = checkpoint.load(resume, map_location="cpu")["config"]
    for given, key in ((model, "model"), (dataset, "dataset")):
        if given is not None and given != saved[key]:
            raise PluginError(
                f"--resume={resume}: the checkpoint is of {key} '{saved[key]}', not '{given}'"
            )
    return saved["model"], saved["dataset"], {**dict(saved["external"]), **(config_dict or {})}


def run(
    model: str | None,
    dataset: str | None,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    read_argv: bool = False,
    resume: str | None = None,
    verbose: bool = False,
) -> RunSummary:
    """Train ``model`` on ``dataset``, evaluate the best checkpoint on the test set.

    Every input (config keys, files, split, model) is checked before anything is written: a bad
    input raises :class:`PluginError` and leaves no log, checkpoint or tensorboard folder.

    Parameters
    ----------
    model, dataset : str
        Model name (plugin first; ``RecBole.<Name>`` for a shadowed built-in) and data set name.
        With ``resume`` they may be ``None`` (taken from the checkpoint).
    config_file_list, config_dict :
        RecBole's configuration inputs (priority: files < dict < command line).
    saved : bool
        Write checkpoints and evaluate the best one (else the last weights).
    read_argv : bool
        Also read ``--key=value`` from ``sys.argv`` as RecBole does (off by default: library use).
    resume : str, optional
        A checkpoint of this plugin: continue its run (its configuration, ``config_dict`` on top;
        weights, optimizer, early-stopping state and RNG states) on the same data.
    verbose : bool
        Print RecBole's whole log on the console (else one line per epoch, warnings and the test
        result; the log file always has everything, see :func:`recbole_sasrec_ext.console.setup`).

    Returns
    -------
    RunSummary
        The run summary (fields documented in :mod:`recbole_sasrec_ext.summary`).
    """
    if resume is not None:
        model, dataset, config_dict = _resume_inputs(resume, model, dataset, config_dict)
    with warnings.catch_warnings(record=True) as caught:  # stderr stays clean until logging starts
        try:
            with swapped_argv(sys.argv if read_argv else sys.argv[:1]):
                config = Config(
                    model=model,
                    dataset=dataset,
                    config_file_list=config_file_list,
                    config_dict=config_dict,
                )
        except (ValueError, NotImplementedError) as exc:  # RecBole's own checks of the values
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PluginError(f"bad configuration: {first}") from exc
        data, train_data, valid_data, test_data, net = build(config)
        fingerprint = checkpoint.data_fingerprint(train_data._dataset)
        if resume is not None:
            checkpoint.check_fingerprint(resume, checkpoint.load(resume)["data"], fingerprint)

    run_log = start_logging(config, verbose)  # validation is over: from here on files are written
    logger = getLogger()
    _log_warnings(caught)
    logger.info(f"model {config['model']} = {config['implementation']}")
    for note in getattr(config, "notes", []):
        logger.info(note)
    logger.info(config)
    logger.info(data)
    report = getattr(data, "split_report", None)
    if report is not None:
        logger.info(report.message())
    logger.info(net)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    if resume is not None:
        trainer.resume_checkpoint(resume, fingerprint)
    show = bool(config["show_progress"]) and verbose  # quiet console: epoch lines are the progress
    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=show
    )
    wall = time.perf_counter() - start
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show)
    logger.info(f"test result: {dict(test_result)}")

    train_seconds = getattr(trainer, "train_seconds", wall)
    epochs = getattr(trainer, "epochs_run", None)
    explain = getattr(net, "explain_example", None)
    is_cuda = getattr(config["device"], "type", "cpu") == "cuda"
    summary = RunSummary(
        model=config["model"],
        implementation=config["implementation"],
        dataset=config["dataset"],
        seed=config["seed"],
        protocol=_protocol(config),
        best_valid_score=None if best_valid_result is None else float(best_valid_score),
        best_valid_result={k: float(v) for k, v in (best_valid_result or {}).items()},
        test_result={k: float(v) for k, v in test_result.items()},
        train_seconds=round(float(train_seconds), 3),
        fit_wall_seconds=round(wall, 3),
        epochs=epochs,
        best_epoch=getattr(trainer, "best_epoch", None),
        seconds_per_epoch=round(train_seconds / epochs, 4) if epochs else None,
        peak_memory_mb=round(_peak_memory_mb(config["device"]), 1),
        valid_history=tuple(ValidationRecord.from_dict(h) for h in getattr(trainer, "history", ())),
        config_hash=config_hash(config),
        versions=_versions(),
        checkpoint=trainer.saved_model_file if saved else None,
        device=str(config["device"]),
        gpu=torch.cuda.get_device_name(config["device"]) if is_cuda else None,
        explanation=None if explain is None else Explanation.from_dict(explain(test_data)),
        log_file=str(run_log.log_file),
        tensorboard_dir=str(run_log.tensorboard_dir),
    )
    run_log.close()
    return summary


def load_data_and_model(model_file: str):
    """Rebuild the configuration, data and model of a plugin checkpoint and load its weights.

    Returns
    -------
    (config, model, dataset, train_data, valid_data, test_data)
    """
    state = checkpoint.load(model_file, map_location="cpu")
    saved = state["config"]
    with warnings.catch_warnings(record=True) as caught:  # stderr stays clean until logging starts
        with swapped_argv(sys.argv[:1]):
            config = Config(
                model=saved["model"], dataset=saved["dataset"], config_dict=dict(saved["external"])
            )
        dataset, train_data, valid_data, test_data, model = build(config)
        fingerprint = checkpoint.data_fingerprint(train_data._dataset)
        checkpoint.check_fingerprint(model_file, state.get("data"), fingerprint)
    start_logging(config)
    _log_warnings(caught)
    checkpoint.load_weights(model, state)
    return config, model, dataset, train_data, valid_data, test_data
