"""The converters' error type, and the path type their functions accept."""

from __future__ import annotations

import os
from typing import Union

from recbole_sasrec_ext.common.errors import PluginError

PathLike = Union[str, "os.PathLike[str]"]


class ConversionError(PluginError, ValueError):
    """A bad input row or an empty result; the message names the file and the 1-based line."""

    def __init__(self, path: PathLike, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")
