"""``DistributedDataParallel`` around a RecBole model's training loss.

RecBole's models train through ``calculate_loss``, not ``forward``; DDP synchronises gradients for
what runs inside its own ``forward``. :class:`TrainingLoss` makes ``calculate_loss`` that forward
(RecBole 1.2.1 instead calls DDP's forward on a dummy input and adds ``0 * sum(parameters)`` to
every loss). DDP broadcasts rank 0's weights when it is built and averages the gradients of every
step over the ranks.

DDP's average of the ranks' mean losses is the one-process mean only when every rank averages over
as many terms. The plugin's full-sequence rows carry a target at every position, a different number
per row, so their loss (a mean over the batch's targets) is weighted by the rank's share of the
global batch's targets (:func:`target_share`, one scalar all-reduce a step): the averaged gradient
is then the gradient of the one-process mean over every target of the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recbole_sasrec_ext.data.full_sequence_dataset import TARGET_LIST_FIELD


def target_share(targets: torch.Tensor) -> torch.Tensor:
    """``world_size`` x this rank's share of the global batch's targets (ids > 0 of ``targets``
    (B, L)), a scalar: 1 when every rank has as many."""
    count = (targets > 0).sum(dtype=torch.float32)  # ()
    total = count.clone()
    dist.all_reduce(total)
    return count * dist.get_world_size() / total.clamp_min(1.0)  # ()


class TrainingLoss(nn.Module):
    """``forward(interaction)`` = ``model.calculate_loss(interaction)`` (a loss or a tuple), a
    loss over full-sequence rows weighted by :func:`target_share`."""

    def __init__(self, model: nn.Module, loss_func=None):
        super().__init__()
        self.model = model
        self.loss_func = loss_func

    def forward(self, interaction):
        loss = (self.loss_func or self.model.calculate_loss)(interaction)
        if TARGET_LIST_FIELD in interaction and isinstance(loss, torch.Tensor):
            loss = loss * target_share(interaction[TARGET_LIST_FIELD])
        return loss


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
