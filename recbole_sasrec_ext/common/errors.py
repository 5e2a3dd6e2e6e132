"""The plugin's user-facing error: raised for bad input, printed by the CLI as one line."""

from __future__ import annotations


class PluginError(Exception):
    """Bad input from the user (unknown model, missing file, malformed atomic file, bad config
    value). The message says what is wrong and where (file and line, or config key)."""


class TrainingDivergedError(Exception):
    """Training diverged: an epoch's mean training loss is not finite, or exceeds
    ``divergence_factor`` × the loss of the run's first batch. The run's checkpoint is deleted
    (it must not be presented as a result); the CLI exits with code 3."""

    def __init__(self, epoch: int, value: float, bound: float | None = None):
        self.epoch, self.value, self.bound = epoch, value, bound
        why = "is not finite" if bound is None else f"exceeds the divergence bound {bound:.6g}"
        super().__init__(
            f"training diverged at epoch {epoch}: mean training loss {value:.6g} {why}"
        )
