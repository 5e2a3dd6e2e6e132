"""Command-line arguments: ``--key=value`` overrides, temporarily replacing ``sys.argv``
(RecBole's ``Config`` reads ``--key=value`` from it), and positive numbers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
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


#: Model and data set of a command without ``--model`` / ``--dataset`` and without them in a
#: config file.
DEFAULT_MODEL, DEFAULT_DATASET = "SASRec", "ml-100k"


def model_and_dataset(
    model: str | None, dataset: str | None, config_files: Sequence[str] | None
) -> tuple[str | None, str | None]:
    """``--model`` / ``--dataset`` as given (an empty name stays empty: it is an error later); a
    name not given is ``None`` when a config file sets it (``Config`` reads it from there), else
    the default. Priority, as for every key: command line > config files > defaults."""
    from recbole_sasrec_ext.common.strict_yaml import safe_load

    in_files: set = set()
    for file in config_files or []:
        try:
            with open(file, encoding="utf-8-sig") as f:
                data = safe_load(f)
        except Exception:  # noqa: BLE001 (Config reports a bad file with its line)
            continue
        if isinstance(data, dict):
            in_files |= set(data)
    if model is None and "model" not in in_files:
        model = DEFAULT_MODEL
    if dataset is None and "dataset" not in in_files:
        dataset = DEFAULT_DATASET
    return model, dataset


def positive(kind: type) -> Callable[[str], float]:
    """An argparse ``type``: ``kind(text)`` if it is > 0, else a usage error (exit 2) naming it."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse
