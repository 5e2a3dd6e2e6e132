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
    """The EMA of ``model``'s floating-point state (parameters and buffers, by state-dict name)."""

    def __init__(self, model: torch.nn.Module, horizon_epochs: float) -> None:
        if horizon_epochs <= 0:
            raise ValueError(f"horizon_epochs must be > 0, got {horizon_epochs}")
        self.horizon_epochs = float(horizon_epochs)
        self.steps = 0
        self.average: dict[str, torch.Tensor] = {
            name: value.detach().clone() for name, value in _floating_state(model)
        }

    def decay(self, steps_per_epoch: int) -> float:
        """The decay of the next update: ``min(1 − 1/(horizon·steps_per_epoch), (1+t)/(10+t))``."""
        target = 1.0 - 1.0 / max(self.horizon_epochs * steps_per_epoch, 1.0)
        return min(target, (1.0 + self.steps) / (10.0 + self.steps))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, steps_per_epoch: int) -> None:
        """One step: ``ema ← d·ema + (1 − d)·w``."""
        d = self.decay(steps_per_epoch)
        for name, value in _floating_state(model):
            self.average[name].lerp_(value.detach(), 1.0 - d)  # ema + (1-d)(w - ema)
        self.steps += 1

    @contextmanager
    @torch.no_grad()
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        raw = {name: value.detach().clone() for name, value in _floating_state(model)}
        _copy_into(model, self.average)
        try:
            yield
        finally:
            _copy_into(model, raw)

    def state(self) -> dict:
        """Checkpoint entry: the step count and the averaged tensors."""
        return {"steps": self.steps, "average": dict(self.average)}

    def load_state(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for name, value in state["average"].items():
            self.average[name].copy_(value)


def _floating_state(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    for name, value in model.state_dict(keep_vars=True).items():
        if torch.is_floating_point(value):
            yield name, value


@torch.no_grad()
def _copy_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    for name, value in _floating_state(model):
        value.data.copy_(tensors[name])
