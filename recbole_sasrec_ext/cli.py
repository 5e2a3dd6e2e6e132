"""``run_recbole.py`` / ``python -m recbole_sasrec_ext``: RecBole's command-line conventions.

``--model``, ``--dataset``, ``--config_files "a.yaml b.yaml"``, ``--resume=CHECKPOINT``,
``--verbose`` and any ``--key=value`` override. Subcommands: ``recommend``, ``explain``, ``tune``
(``python -m recbole_sasrec_ext recommend --help``); without one, a training run.
The last line of stdout is one JSON object (the run summary); errors are one line on stderr
(set ``RECBOLE_SASREC_EXT_DEBUG=1`` for the traceback) and an :class:`ExitCode`.
"""

from __future__ import annotations

import argparse
import os
import sys

from recbole_sasrec_ext.argv import parse_overrides
from recbole_sasrec_ext.errors import PluginError, TrainingDivergedError
from recbole_sasrec_ext.exit_codes import (  # noqa: F401 (re-exported)
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
        epilog="Any --key=value is a RecBole config override, e.g. --epochs=5 --data_path=datasets/",
    )
    parser.add_argument("--model", "-m", default=None, help="model name (default SASRec)")
    parser.add_argument("--dataset", "-d", default=None, help="data set name (default ml-100k)")
    parser.add_argument("--config_files", default=None, help='config files, space separated: "a.yaml b.yaml"')
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
    "recommend": "recbole_sasrec_ext.recommend",
    "explain": "recbole_sasrec_ext.explain",
    "tune": "recbole_sasrec_ext.tune",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        from importlib import import_module

        return import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    args, overrides = parse_args(argv)
    files = args.config_files.split() if args.config_files else None
    for file in files or []:
        if not os.path.isfile(file):
            print(f"error: config file not found: {file}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        from recbole_sasrec_ext.quick_start import run

        if args.resume is None:
            model, dataset = args.model or "SASRec", args.dataset or "ml-100k"
        else:
            model, dataset = args.model, args.dataset
        summary = run(
            model,
            dataset,
            config_file_list=files,
            config_dict=overrides,
            resume=args.resume,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDivergedError as exc:
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except PluginError as exc:
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        message = " ".join(str(exc).split())  # always one line
        print(f"error: {message}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except Exception as exc:
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: {type(exc).__name__}: {message} (RECBOLE_SASREC_EXT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(summary.to_json() + "\n")
    sys.stdout.flush()
    return EXIT_OK
