"""Command-line arguments: ``--key=value`` overrides, and temporarily replacing ``sys.argv``
(RecBole's ``Config`` reads ``--key=value`` from it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def swapped_argv(argv: Sequence[str]) -> Iterator[None]:
    """Set ``sys.argv`` to ``argv`` inside the block; restore the original afterwards."""
    saved = sys.argv
    sys.argv = list(argv)
    try:
        yield
    finally:
        sys.argv = saved


def parse_overrides(parser: argparse.ArgumentParser, rest: Sequence[str]) -> dict[str, str]:
    """``--key=value`` arguments the parser did not know, as {key: value-string}; anything else is
    a usage error (exit 2) through ``parser.error``."""
    overrides = {}
    for arg in rest:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"unrecognised argument {arg!r}: overrides are written --key=value")
        overrides[key] = value
    return overrides
