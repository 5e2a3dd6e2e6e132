"""``DistributedDataParallel`` around a RecBole model's training loss.

RecBole's models train through ``calculate_loss``, not ``forward``; DDP synchronises gradients for
what runs inside its own ``forward``. :class:`TrainingLoss` makes ``calculate_loss`` that forward
(RecBole 1.2.1 instead calls DDP's forward on a dummy input and adds ``0 * sum(parameters)`` to
every loss). DDP broadcasts rank 0's weights when it is built and averages the gradients of every
step over the ranks.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


class TrainingLoss(nn.Module):
    """``forward(interaction)`` = ``model.calculate_loss(interaction)`` (a loss or a tuple)."""

    def __init__(self, model: nn.Module, loss_func=None):
        super().__init__()
        self.model = model
        self.loss_func = loss_func

    def forward(self, interaction):
        return (self.loss_func or self.model.calculate_loss)(interaction)


def data_parallel(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP of ``model``'s training loss on ``device`` (its parameters are the model's own, so the
    optimizer, checkpoints and evaluation keep using ``model``). ``static_graph``: DDP records in
    the first step which parameters the loss uses (a model whose loss never touches some of its
    parameters trains without ``find_unused_parameters``' search at every step); the set must be
    the same at every step, as it is for a fixed model and loss."""
    return DistributedDataParallel(
        TrainingLoss(model),
        device_ids=[device.index] if device.type == "cuda" else None,
        static_graph=True,
    )
