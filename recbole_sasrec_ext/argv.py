"""Temporarily replace ``sys.argv`` (RecBole's ``Config`` reads ``--key=value`` from it)."""

from __future__ import annotations

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
