"""Exit codes of every command of the plugin (training, benchmark, converters)."""

#: Success.
EXIT_OK = 0
#: The run failed for a reason other than bad input (an unexpected exception).
EXIT_FAILED = 1
#: Bad input: unknown model, missing or malformed file, bad config value or argument.
EXIT_BAD_INPUT = 2
#: Interrupted (Ctrl-C), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130
