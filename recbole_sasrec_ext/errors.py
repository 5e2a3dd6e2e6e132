"""The plugin's user-facing error: raised for bad input, printed by the CLI as one line."""


class PluginError(Exception):
    """Bad input from the user (unknown model, missing file, malformed atomic file, bad config
    value). The message says what is wrong and where (file and line, or config key)."""
