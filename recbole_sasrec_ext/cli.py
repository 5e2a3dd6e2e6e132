"""``run_recbole.py`` / ``python -m recbole_sasrec_ext``: RecBole's command-line conventions.

``--model``, ``--dataset``, ``--config_files "a.yaml b.yaml"`` and any ``--key=value`` override.
The last line of stdout is one JSON object (the run summary); errors are one line on stderr
(set ``RECBOLE_SASREC_EXT_DEBUG=1`` for the traceback) and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from recbole_sasrec_ext.errors import PluginError, TrainingDivergedError

#: Exit codes.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(
        prog="run_recbole.py",
        description="Train and evaluate a model with the recbole_sasrec_ext pipeline.",
        epilog="Any --key=value is a RecBole config override, e.g. --epochs=5 --data_path=datasets/",
    )
    parser.add_argument("--model", "-m", default="SASRec", help="model name (default SASRec)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="data set name (default ml-100k)")
    parser.add_argument("--config_files", default=None, help='config files, space separated: "a.yaml b.yaml"')
    args, rest = parser.parse_known_args(argv)
    overrides = {}
    for arg in rest:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"unrecognised argument {arg!r}: overrides are written --key=value")
        overrides[key] = value
    return args, overrides


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    files = args.config_files.split() if args.config_files else None
    for file in files or []:
        if not os.path.isfile(file):
            print(f"error: config file not found: {file}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        from recbole_sasrec_ext.quick_start import run

        summary = run(args.model, args.dataset, config_file_list=files, config_dict=overrides)
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
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if os.environ.get("RECBOLE_SASREC_EXT_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: {type(exc).__name__}: {message} (RECBOLE_SASREC_EXT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return EXIT_OK
