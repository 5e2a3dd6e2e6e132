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
from pathlib import Path

import numpy as np
import torch
from recbole.utils import init_seed

from recbole_sasrec_ext import parallel
from recbole_sasrec_ext.common.argv import swapped_argv
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.config.plugin_config import Config
from recbole_sasrec_ext.config.settings_hash import settings_hash
from recbole_sasrec_ext.contract.model import Explainable, declarations
from recbole_sasrec_ext.contract.plan import plan_of
from recbole_sasrec_ext.contract.summary import Explanation, RunSummary, StoppedBy, ValidationRecord
from recbole_sasrec_ext.data import create_dataset, data_preparation
from recbole_sasrec_ext.evaluation import per_user
from recbole_sasrec_ext.models.registry import get_model
from recbole_sasrec_ext.parallel import group as process_group
from recbole_sasrec_ext.parallel.evaluation import gather_recorder
from recbole_sasrec_ext.parallel.quiet import silence_logging
from recbole_sasrec_ext.parallel.sharding import ShardedTrainLoader
from recbole_sasrec_ext.training import checkpoint, console
from recbole_sasrec_ext.training.registry import get_trainer


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
    """``full``, ``full, seen removed``, ``uni100``, ... (``valid/test`` when the phases differ):
    the run plan's protocol (kept for serving.export)."""
    return plan_of(config).protocol


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
    rank = plan_of(config).rank  # 0 in a one-process run
    init_seed(config["seed"] + rank, config["reproducibility"])
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
    saved = checkpoint.run_config(resume, checkpoint.load(resume, map_location="cpu"))
    for given, key in ((model, "model"), (dataset, "dataset")):
        if given is not None and given != saved[key]:
            raise PluginError(
                f"--resume={resume}: the checkpoint is of {key} '{saved[key]}', not '{given}'"
            )
    external = checkpoint.external_config(saved)
    return saved["model"], saved["dataset"], {**external, **(config_dict or {})}


def run(
    model: str | None,
    dataset: str | None,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    read_argv: bool = False,
    resume: str | None = None,
    verbose: bool = False,
    test: bool = True,
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
    test : bool
        Evaluate on the test set (``tune`` passes False: its trials never see test results, and
        the summary's ``test_result`` is empty).
    verbose : bool
        Print RecBole's whole log on the console (else one line per epoch, warnings and the test
        result; the log file always has everything, see
        :func:`recbole_sasrec_ext.training.console.setup`).

    Launched by ``torchrun`` (or ``run_recbole.py --nproc=N``), every process calls ``run`` and
    trains its share of each batch (:mod:`recbole_sasrec_ext.parallel`, docs/scaling.md); only
    rank 0 writes the log and checkpoints, and every rank returns the same evaluation results.

    Returns
    -------
    RunSummary
        The run summary (fields documented in :mod:`recbole_sasrec_ext.contract.summary`).
    """
    group = parallel.from_env()
    if group is not None:
        process_group.claim_gpus(group)
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
                    group=group,  # this process's device and ranks, set while it resolves
                )
        except (ValueError, NotImplementedError) as exc:  # RecBole's own checks of the values
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PluginError(f"bad configuration: {first}") from exc
        if group is None:
            parallel.check_nproc(config["nproc"] if config["nproc"] is not None else 1, None)
        else:
            _check_parallel_trainer(config)
        data, train_data, valid_data, test_data, net = build(config)
        fingerprint = checkpoint.data_fingerprint(train_data._dataset)
        if resume is not None:
            state = checkpoint.load(resume)
            checkpoint.check_fingerprint(resume, state["data"], fingerprint)
            checkpoint.check_resumable(resume, state)

    started = False if group is None else process_group.start(group, config["device"])
    finished = False
    try:
        summary = _train_and_test(
            config, data, train_data, valid_data, test_data, net, caught, group,
            saved=saved, resume=resume, verbose=verbose, fingerprint=fingerprint, test=test,
        )
        finished = True
        return summary
    finally:
        process_group.stop(started, finished)


def _check_parallel_trainer(config) -> None:
    """Multi-process runs train through :class:`PluginTrainer` (RecBole's specialised trainers,
    e.g. knowledge-graph or pre-training ones, have their own loops)."""
    from recbole_sasrec_ext.training.trainer import PluginTrainer

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])
    if not issubclass(trainer, PluginTrainer):
        raise PluginError(
            f"model {config['model']} trains with RecBole's {trainer.__name__}: several processes "
            "are supported for models trained by the plugin's trainer only; run one process"
        )


def _start_logging_on(config, verbose: bool, group) -> console.RunLog:
    """The run's log on rank 0 (its file names on every rank); other ranks log nothing."""
    if group is None:
        return start_logging(config, verbose)
    run_log = start_logging(config, verbose) if group.is_main else None
    if not group.is_main:
        silence_logging()
    names = [None if run_log is None else (str(run_log.log_file), str(run_log.tensorboard_dir))]
    torch.distributed.broadcast_object_list(names, src=0)
    if run_log is None:
        log_file, tensorboard_dir = names[0]
        run_log = console.RunLog(Path(log_file), Path(tensorboard_dir), verbose, ())
    return run_log


def _train_and_test(
    config, data, train_data, valid_data, test_data, net, caught, group, *, saved, resume,
    verbose, fingerprint, test=True,
) -> RunSummary:
    if group is not None:
        train_data = ShardedTrainLoader(train_data, group.rank, group.world_size, config["seed"])
    run_log = _start_logging_on(config, verbose, group)  # validation is over: files are written
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
    recorder = (  # only when asked for: it sees every test batch
        per_user.PerUserRecorder.attach(trainer, config["USER_ID_FIELD"])
        if config["per_user_file"] and test
        else None
    )
    test_result = {}
    if test:
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show)
        logger.info(f"test result: { {k: float(v) for k, v in test_result.items()} }")
    if recorder is not None and group is not None:  # each rank recorded its share of the users
        recorder = gather_recorder(recorder, group.world_size)
    per_user_file = _write_per_user(config, recorder, test_data._dataset, group)

    train_seconds = getattr(trainer, "train_seconds", wall)
    epochs = getattr(trainer, "epochs_run", None)
    explanation = net.explain_example(test_data) if isinstance(net, Explainable) else None
    is_cuda = getattr(config["device"], "type", "cpu") == "cuda"
    summary = RunSummary(
        model=config["model"],
        implementation=config["implementation"],
        dataset=config["dataset"],
        seed=config["seed"],
        protocol=plan_of(config).protocol,
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
        explanation=None if explanation is None else Explanation.from_dict(explanation),
        log_file=str(run_log.log_file),
        tensorboard_dir=str(run_log.tensorboard_dir),
        world_size=plan_of(config).world_size,
        stopped_by=stopped_by(trainer),
        per_user_file=per_user_file,
        settings_hash=settings_hash(config),
    )
    trainer.tensorboard.close()  # RecBole leaves it open: its writer thread would outlive the run
    run_log.close()
    return summary


def stopped_by(trainer) -> str:
    """``one_pass`` for a model fitted in one pass (its class sets ``ONE_PASS``, e.g. Pop);
    ``early_stopping`` when RecBole's early stopping ended the fit (more than ``stopping_step``
    validations without improvement); else ``epoch_cap`` (every epoch ran)."""
    model = getattr(trainer.model, "module", trainer.model)  # DDP wraps the model
    if declarations(type(model)).one_pass:
        return StoppedBy.ONE_PASS.value
    cur_step, patience = getattr(trainer, "cur_step", 0), getattr(trainer, "stopping_step", None)
    stopped = patience is not None and cur_step > patience
    return StoppedBy.EARLY_STOPPING.value if stopped else StoppedBy.EPOCH_CAP.value


def _write_per_user(
    config,
    recorder: per_user.PerUserRecorder | None,
    dataset,
    group: parallel.ProcessGroupInfo | None,
) -> str | None:
    """Write the test set's per-user metrics to ``per_user_file`` when it is set (rank 0 of a
    multi-process run, from the ranks' joined recorders); its path (None on the other ranks)."""
    path = config["per_user_file"]
    if not path or recorder is None or (group is not None and not group.is_main):
        return None
    uid = config["USER_ID_FIELD"]
    values = recorder.result(config["metrics"], config["topk"],
                             lambda ids: dataset.id2token(uid, ids))
    if values is None:
        getLogger().warning(
            f"per_user_file: no per-user top-k metrics recorded, {path} not written"
        )
        return None
    return str(per_user.save(path, values))


def load_data_and_model(model_file: str, log: bool = True):
    """Rebuild the configuration, data and model of a plugin checkpoint and load its weights;
    ``log``: start a log file (``log/``) as a run does (``recommend`` and ``explain`` do not).

    Returns
    -------
    (config, model, dataset, train_data, valid_data, test_data)
    """
    state = checkpoint.load(model_file, map_location="cpu")
    saved = checkpoint.run_config(model_file, state)
    with warnings.catch_warnings(record=True) as caught:  # stderr stays clean until logging starts
        with swapped_argv(sys.argv[:1]):
            config = Config(
                model=saved["model"], dataset=saved["dataset"],
                config_dict=checkpoint.external_config(saved),
            )
        dataset, train_data, valid_data, test_data, model = build(config)
        fingerprint = checkpoint.data_fingerprint(train_data._dataset)
        checkpoint.check_fingerprint(model_file, state.get("data"), fingerprint)
    if log:
        start_logging(config)
        _log_warnings(caught)
    checkpoint.load_weights(model, state, model_file)
    return config, model, dataset, train_data, valid_data, test_data
