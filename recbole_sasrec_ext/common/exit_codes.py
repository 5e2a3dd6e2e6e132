"""Exit codes of every command of the plugin (training, benchmark, converters);
README lists them."""

import enum


class ExitCode(enum.IntEnum):
    """The command line's exit codes."""

    OK = 0  # the run finished; the summary is the last stdout line
    FAILED = 1  # an internal error (a bug): the message names the exception
    BAD_INPUT = 2  # bad input (config key, file, data set, checkpoint): nothing was written
    DIVERGED = 3  # training diverged (non-finite or exploding loss)
    INTERRUPTED = 130  # Ctrl-C / SIGINT, as a shell reports it


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.BAD_INPUT,
    ExitCode.DIVERGED,
    ExitCode.INTERRUPTED,
)
