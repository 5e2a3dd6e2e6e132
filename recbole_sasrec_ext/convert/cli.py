"""Command line for the data converters: ``python -m recbole_sasrec_ext.convert``.

Example::

    python -m recbole_sasrec_ext.convert --format sasrec \\
        --input ../shared/data/games-sasrec/Video.txt --name games --out datasets

Exit status 0 on success (a one-line summary on stdout), 2 with a one-line ``error: ...`` on
stderr for bad input, an existing output or a bad argument. The logic lives in
:mod:`recbole_sasrec_ext.convert.converters` and the modules beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.convert.converters import Format, convert


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of :func:`main`."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec_ext.convert",
        description="Convert a data set into RecBole atomic files <out>/<name>/<name>.inter "
                    "and <out>/<name>/<name>.yaml.")
    parser.add_argument("--format", required=True, choices=[f.value for f in Format],
                        help="input format (see datasets/README.md)")
    parser.add_argument("--input", required=True, help="source file (plain or gzipped)")
    parser.add_argument("--name", required=True, help="data set name (RecBole 'dataset')")
    parser.add_argument("--out", default="datasets",
                        help="parent folder of <name>/ (RecBole 'data_path'); default: datasets")
    parser.add_argument("--min-count", type=int, default=None,
                        help="k-core filter: drop users and items with fewer interactions "
                             "(default 5 for amazon, 0 = off otherwise)")
    parser.add_argument("--kcore-passes", type=int, default=None,
                        help="at most this many k-core passes (default: until stable; "
                             "1 = SASRec DataProcessing.py's single pass)")
    parser.add_argument("--time-deltas", action="store_true",
                        help="seqline only: timestamp = cumulative time deltas after the tab")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; return the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        summary = convert(args.format, args.input, args.name, args.out,
                          min_count=args.min_count, kcore_passes=args.kcore_passes,
                          time_deltas=args.time_deltas, overwrite=args.overwrite)
    except (ValueError, OSError) as exc:  # ConversionError is a ValueError
        message = str(exc).replace("\n", " ")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary)
    return EXIT_OK
