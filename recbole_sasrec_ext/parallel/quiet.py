"""Ranks other than 0 write nothing: no log file, no console lines, no TensorBoard folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path


class NullWriter:
    """A TensorBoard ``SummaryWriter`` that writes nothing (every method is a no-op)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def silence_logging() -> None:
    """Send every log record (and captured warning) of this process nowhere."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.NullHandler())  # no last-resort handler on stderr either
    logging.captureWarnings(True)


def drop_tensorboard(writer) -> NullWriter:
    """Close ``writer`` (RecBole's Trainer opens one per process), remove the folder it just
    created when it holds nothing but its own event files, and return a :class:`NullWriter`."""
    folder = Path(writer.log_dir)
    writer.close()
    if folder.is_dir() and all(p.name.startswith("events.out.tfevents") for p in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
    return NullWriter()
