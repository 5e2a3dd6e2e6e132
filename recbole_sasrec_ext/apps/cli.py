"""``run_recbole.py`` / ``python -m recbole_sasrec_ext``: RecBole's command-line conventions.

``--model``, ``--dataset``, ``--config_files "a.yaml b.yaml"``, ``--resume=CHECKPOINT``,
``--verbose`` and any ``--key=value`` override; ``--nproc=N`` trains in N processes on this
machine (as ``torchrun --nproc_per_node=N -m recbole_sasrec_ext`` does; docs/scaling.md).
Subcommands: ``recommend`` (``--checkpoint``, or ``--bundle``), ``explain``, ``tune``, ``export``,
``similar``, ``serve`` (``python -m recbole_sasrec_ext recommend --help``); without one, a
training run. The last line of stdout is one JSON object (the run summary); errors are one line
on stderr (set ``RECBOLE_SASREC_EXT_DEBUG=1`` for the traceback) and an :class:`ExitCode`. In a
multi-process run only rank 0 prints the summary; bad input is reported once per machine, any
other error by the rank that met it (``rank R: error: ...``).
"""

from __future__ import annotations

import argparse
import os
import sys

from recbole_sasrec_ext.common.argv import model_and_dataset, parse_overrides
from recbole_sasrec_ext.common.errors import PluginError, TrainingDivergedError
from recbole_sasrec_ext.common.exit_codes import (  # noqa: F401 (re-exported)
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ExitCode,
)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(
        prog="run_recbole.py",
        description="Train and evaluate a model with the recbole_sasrec_ext pipeline.",
        epilog="Any --key=value is a RecBole config override, "
        "e.g. --epochs=5 --data_path=datasets/",
    )
    parser.add_argument("--model", "-m", default=None, help="model name (default SASRec)")
    parser.add_argument("--dataset", "-d", default=None, help="data set name (default ml-100k)")
    parser.add_argument("--config_files", default=None,
                        help='config files, space separated: "a.yaml b.yaml"')
    parser.add_argument(
        "--resume", default=None, metavar="CHECKPOINT",
        help="continue the run of a checkpoint (its config; overrides apply on top)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print RecBole's whole log (else a short console)"
    )
    args, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(parser, rest)
    return args, overrides


#: Subcommand name -> module with ``main(argv) -> int``.
SUBCOMMANDS = {
    "recommend": "recbole_sasrec_ext.apps.recommend",
    "explain": "recbole_sasrec_ext.apps.explain",
    "tune": "recbole_sasrec_ext.apps.tune",
    "export": "recbole_sasrec_ext.serving.export",
    "similar": "recbole_sasrec_ext.serving.similar_command",
    "serve": "recbole_sasrec_ext.serving.server",
}


def _say(message: str, group, every_rank: bool) -> None:
    """One line on stderr: from every process, or (``every_rank`` False) once per machine."""
    if group is not None and not (every_rank or group.reports_errors):
        return
    prefix = f"rank {group.rank}: " if group is not None and group.rank != 0 else ""
    print(prefix + message, file=sys.stderr)


def _without_nproc(argv: list[str]) -> list[str]:
    return [a for a in argv if not a.startswith("--nproc=")]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        from importlib import import_module

        return import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    args, overrides = parse_args(argv)
    from recbole_sasrec_ext.common import allocator, lifetime
    from recbole_sasrec_ext.parallel import group as process_group

    lifetime.sigterm_as_interrupt()
    try:
        allocator.tune_for_training()  # freed activations kept for the next step (glibc only)
        group = process_group.from_env()
        if group is not None:  # a launched worker: never outlive the launcher
            lifetime.die_with_parent()
        nproc = process_group.parse_nproc(overrides.pop("nproc", 1))
        if group is not None:
            process_group.check_nproc(nproc, group)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    files = args.config_files.split() if args.config_files else None
    for file in files or []:
        if not os.path.isfile(file):
            _say(f"error: config file not found: {file}", group, every_rank=False)
            return EXIT_BAD_INPUT
    if group is None and nproc > 1:
        from recbole_sasrec_ext.parallel.launch import launch

        return launch(nproc, _without_nproc(argv))
    try:
        from recbole_sasrec_ext.apps.quick_start import run

        if args.resume is None:
            model, dataset = model_and_dataset(args.model, args.dataset, files)
        else:
            model, dataset = args.model, args.dataset
        from recbole_sasrec_ext.config.validation import strict_model_keys

        with strict_model_keys():  # a key of another model would have no effect
            summary = run(
                model,
                dataset,
                config_file_list=files,
                config_dict=overrides,
                resume=args.resume,
                verbose=args.verbose,
            )
    except lifetime.Terminated:
        if group is None:  # a launched worker's launcher says it
            _say("error: terminated (SIGTERM)", group, every_rank=False)
        return lifetime.EXIT_TERMINATED
    except KeyboardInterrupt:
        _say("error: interrupted", group, every_rank=False)
        return EXIT_INTERRUPTED
    except TrainingDivergedError as exc:  # every rank sees the same (averaged) loss
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        _say(f"error: {exc}", group, every_rank=False)
        return EXIT_DIVERGED
    except PluginError as exc:  # the same input is checked alike on every rank
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        message = " ".join(str(exc).split())  # always one line
        _say(f"error: {message}", group, every_rank=False)
        return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except Exception as exc:
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _say(
            f"error: {type(exc).__name__}: {message} "
            "(RECBOLE_SASREC_EXT_DEBUG=1 shows the traceback)",
            group, every_rank=True,
        )
        return EXIT_FAILED
    if group is None or group.is_main:
        sys.stdout.write(summary.to_json() + "\n")
        sys.stdout.flush()
    return EXIT_OK
