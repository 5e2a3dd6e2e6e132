"""An exponential moving average (EMA) of a model's weights, used for validation, checkpoints and
test while training goes on with the raw weights (``weight_ema_epochs``).

After every optimizer step ``ema = d·ema + (1 − d)·w`` for every floating-point parameter and
buffer. ``d`` follows from a horizon given in epochs of optimizer steps, so that one setting means
the same on data sets of different sizes: ``d = 1 − 1/(horizon · steps_per_epoch)``; during the
first steps ``d_t = min(d, (1 + t)/(10 + t))`` (the usual warm-up, so the average is not dominated
by the initial weights).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class WeightAverage:
    """The EMA of ``model``'s floating-point state (parameters and buffers, by state-dict name).

    The model's tensors are looked up once: loading a state dict copies into them in place, so
    they stay the model's for its life."""

    def __init__(self, model: torch.nn.Module, horizon_epochs: float) -> None:
        if horizon_epochs <= 0:
            raise ValueError(f"horizon_epochs must be > 0, got {horizon_epochs}")
        self.horizon_epochs = float(horizon_epochs)
        self.steps = 0
        pairs = list(_floating_state(model))
        self._names = [name for name, _ in pairs]
        self._tensors = [tensor.detach() for _, tensor in pairs]  # the model's own
        self._average: list[torch.Tensor] = [t.clone() for t in self._tensors]

    @property
    def average(self) -> dict[str, torch.Tensor]:
        """The averaged tensors by state-dict name."""
        return dict(zip(self._names, self._average))

    def decay(self, steps_per_epoch: int) -> float:
        """The decay of the next update: ``min(1 − 1/(horizon·steps_per_epoch), (1+t)/(10+t))``."""
        target = 1.0 - 1.0 / max(self.horizon_epochs * steps_per_epoch, 1.0)
        return min(target, (1.0 + self.steps) / (10.0 + self.steps))

    @torch.no_grad()
    def update(self, steps_per_epoch: int) -> None:
        """One step: ``ema ← d·ema + (1 − d)·w``, one fused call over all tensors."""
        if self._average:
            torch._foreach_lerp_(self._average, self._tensors, 1.0 - self.decay(steps_per_epoch))
        self.steps += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        with torch.no_grad():
            raw = [t.clone() for t in self._tensors]
            torch._foreach_copy_(self._tensors, self._average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._tensors, raw)

    def adopt_model_weights(self) -> None:
        """Take the model's current weights as the average (a resumed run's checkpoint holds it)."""
        with torch.no_grad():
            torch._foreach_copy_(self._average, self._tensors)


def _floating_state(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    for name, value in model.state_dict(keep_vars=True).items():
        if torch.is_floating_point(value):
            yield name, value
