"""Logging for one run: the full log in a file of its own, a short console, TensorBoard per run.

Quiet console (the default): one line per epoch (training loss, and the validation result when the
epoch was validated) for the first :data:`ALL_EPOCHS` epochs, then only every 10th epoch and each
epoch with a new best validation score (marked ``*``); warnings; the test result. ``verbose=True``
shows RecBole's whole log as RecBole prints it. The log file always holds everything (config dump,
data and model summaries, warnings). Warnings a user cannot act on (:data:`QUIET_WARNINGS`) go to
the log file only.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from recbole_sasrec_ext.training import checkpoint

#: Root folders of the log files and TensorBoard runs (RecBole's names).
LOG_ROOT, TENSORBOARD_ROOT = Path("log"), Path("log_tensorboard")
#: Warnings raised inside RecBole or torch that a user cannot act on: log file only.
QUIET_WARNINGS = (
    "torch.cuda.amp.GradScaler",  # RecBole's Trainer builds the deprecated GradScaler
    "The given NumPy array is not writable",  # RecBole's Dataset hands numpy views to torch
)
#: Epochs shown one line each before the console shows only every 10th and new bests.
ALL_EPOCHS = 20
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRAIN = re.compile(r"^epoch (\d+) training \[")
_SCORE = re.compile(r"^epoch \d+ evaluating \[.*valid_score: ([-+0-9.eE]+|nan|inf)\]")
_VALID = re.compile(r"^valid result: ?\n?")
_SHOWN = re.compile(r"^(test result|Finished training)")
FILE_FORMAT = "%(asctime)-15s %(levelname)s  %(message)s"


def plain(message: str) -> str:
    """``message`` without RecBole's colour codes."""
    return _ANSI.sub("", message)


@dataclass
class RunLog:
    """The log of one run: where it goes, and how to release it."""

    log_file: Path
    tensorboard_dir: Path  # where RecBole's Trainer writes this run's TensorBoard events
    verbose: bool
    handlers: tuple[logging.Handler, ...]

    def close(self) -> None:
        """Flush and detach this run's handlers (the log file is released)."""
        root = logging.getLogger()
        for handler in self.handlers:
            handler.close()
            root.removeHandler(handler)
        logging.captureWarnings(False)


class QuietConsole(logging.StreamHandler):
    """Console handler of the quiet mode: an epoch's training line and its validation result
    become one line; other INFO records go to the log file only."""

    def __init__(self, stream=None):
        super().__init__(stream or sys.stderr)
        self.follows_stderr = stream is None  # write to the sys.stderr of the moment
        self.pending: str | None = None
        self.epoch = -1
        self.best: float | None = None
        self.improved = False

    def _shown(self, improved: bool) -> bool:
        return self.epoch < ALL_EPOCHS or (self.epoch + 1) % 10 == 0 or improved

    def emit(self, record: logging.LogRecord) -> None:
        text = plain(record.getMessage()).strip()
        if record.name == "py.warnings" and any(w in text for w in QUIET_WARNINGS):
            return
        train, score = _TRAIN.match(text), _SCORE.match(text)
        if train:
            self._flush_pending()
            self.pending, self.epoch, self.improved = text, int(train.group(1)), False
        elif score:
            value = float(score.group(1))
            self.improved = self.best is None or value > self.best
            self.best = value if self.improved else self.best
        elif _VALID.match(text):
            metrics = " ".join(_VALID.sub("", text).split())
            line = f"{self.pending} | valid: {metrics}" if self.pending else f"valid: {metrics}"
            if self._shown(self.improved):
                self._write(line + (" *" if self.improved and self.epoch >= ALL_EPOCHS else ""))
            self.pending = None
        elif record.levelno >= logging.WARNING or _SHOWN.match(text):
            self._flush_pending()
            prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
            self._write(prefix + text.splitlines()[0] if record.name == "py.warnings"
                        else prefix + text)

    def _flush_pending(self) -> None:
        if self.pending and self._shown(False):
            self._write(self.pending)
        self.pending = None

    def _write(self, line: str) -> None:
        if self.follows_stderr:  # sys.stderr may have been replaced (and the old one closed)
            self.stream = sys.stderr
        self.stream.write(line + "\n")
        self.flush()

    def close(self) -> None:
        self._flush_pending()
        super().close()


def _level(state) -> int:
    names = {"debug": logging.DEBUG, "warning": logging.WARNING, "error": logging.ERROR,
             "critical": logging.CRITICAL}
    return names.get(str(state).lower(), logging.INFO)


def setup(config, verbose: bool = False) -> RunLog:
    """Replace RecBole's ``init_logger``: a log file unique to this run (``log/<model>/
    <model>-<dataset>-<time>-<pid>-<random>.log``, never RecBole's one-second names, which two runs
    started in the same second share), the console quiet unless ``verbose``, warnings captured
    into the log. RecBole's Trainer names its TensorBoard folder after the log file, so each run
    gets ``log_tensorboard/<log file stem>``."""
    from colorlog import ColoredFormatter
    from recbole.utils.logger import RemoveColorFilter, log_colors_config

    model, dataset = config["model"], config["dataset"]
    # RecBole names the TensorBoard folder after the log file's name up to its first ".": no "."
    # before the suffix (``RecBole.SASRec``, data sets like ``ml-1m.v2``), or runs would share it
    name_model, name_dataset = model.replace(".", "_"), dataset.replace(".", "_")
    log_file = checkpoint.unique_checkpoint_path(
        str(LOG_ROOT / model), name_model, name_dataset
    ).with_suffix(".log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    level = _level(config["state"])
    root = logging.getLogger()
    for handler in list(root.handlers):  # a previous run's (or RecBole's basicConfig) handlers
        if (isinstance(handler, (logging.FileHandler, QuietConsole))
                or type(handler) is logging.StreamHandler):
            handler.close()
            root.removeHandler(handler)
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setLevel(min(level, logging.INFO))
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT, "%a %d %b %Y %H:%M:%S"))
    file_handler.addFilter(RemoveColorFilter())
    if verbose:
        console = logging.StreamHandler()
        console.setLevel(level)
        console.setFormatter(ColoredFormatter("%(log_color)s" + FILE_FORMAT, "%d %b %H:%M",
                                              log_colors=log_colors_config))
    else:
        console = QuietConsole()
        console.setLevel(max(level, logging.INFO))
    root.addHandler(file_handler)  # first: RecBole's get_tensorboard reads the first file handler
    root.addHandler(console)
    root.setLevel(min(level, logging.INFO))
    logging.captureWarnings(True)  # warnings become log records (console filtered, file all)
    stem = log_file.name.split(".")[0]  # RecBole's get_tensorboard naming
    return RunLog(log_file, TENSORBOARD_ROOT / stem, verbose, (file_handler, console))
