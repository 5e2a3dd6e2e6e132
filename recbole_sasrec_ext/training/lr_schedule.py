"""The large-batch recipe: a learning rate scaled with the batch size, and a linear warm-up.

``lr_scaling`` (``none`` | ``sqrt`` | ``linear``) multiplies ``learning_rate`` by 1,
√(batch / base) or batch / base, ``base`` = ``lr_base_batch_size`` (the batch the learning rate was
tuned for: 128 in the SASRec paper). ``warmup_epochs`` (a float, may be fractional) ramps the rate
linearly from 1/steps of its value to its value over the first ``warmup_epochs`` epochs of steps.

``lr_plateau_patience`` / ``lr_plateau_factor``: the rate is multiplied by the factor each time that
many validations in a row bring no new best score (:func:`plateau_factor`). The factor in force is
a function of the validation history alone, so a resumed run recomputes it from its checkpoint.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass


class LrScaling(str, enum.Enum):
    """``lr_scaling`` values."""

    NONE = "none"
    SQRT = "sqrt"
    LINEAR = "linear"


@dataclass(frozen=True)
class LrSchedule:
    """Scaled peak learning rate and warm-up length in optimizer steps."""

    peak_lr: float
    warmup_steps: int

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based)."""
        if step >= self.warmup_steps:
            return self.peak_lr
        return self.peak_lr * (step + 1) / self.warmup_steps


def scaled_learning_rate(
    lr: float, scaling: LrScaling, batch_size: int, base_batch_size: int
) -> float:
    """``lr`` scaled from ``base_batch_size`` to ``batch_size`` by ``scaling``."""
    ratio = batch_size / base_batch_size
    if scaling is LrScaling.SQRT:
        return lr * math.sqrt(ratio)
    if scaling is LrScaling.LINEAR:
        return lr * ratio
    return lr


def make_schedule(
    lr: float, scaling: LrScaling, batch_size: int, base_batch_size: int, warmup_epochs: float,
    steps_per_epoch: int,
) -> LrSchedule:
    """The schedule of a run: peak rate and warm-up steps (``ceil(warmup_epochs × steps)``)."""
    peak = scaled_learning_rate(lr, scaling, batch_size, base_batch_size)
    return LrSchedule(peak, math.ceil(warmup_epochs * steps_per_epoch))


def plateau_factor(scores: Sequence[float], patience: int, factor: float, bigger: bool) -> float:
    """The learning-rate multiplier after the validations ``scores`` (oldest first).

    Every ``patience``-th validation in a row without a new best multiplies it by ``factor``;
    ``patience`` 0 = 1.0. A new best is a score at least as good as every earlier one (``bigger``:
    higher is better): a tie counts, as in RecBole's early stopping, so the plateau and the
    patience count from the same epoch.
    E.g. patience 2, scores 1, 0, 0, 0, 0 (higher better): four validations without a new best,
    two decays, ``factor ** 2``.
    """
    if patience <= 0:
        return 1.0
    multiplier, best, since_best = 1.0, None, 0
    for score in scores:
        if best is None or (score >= best if bigger else score <= best):
            best, since_best = score, 0
            continue
        since_best += 1
        if since_best % patience == 0:
            multiplier *= factor
    return multiplier
