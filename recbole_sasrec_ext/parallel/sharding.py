"""Which rows each process trains on and which evaluation batches it scores.

Training: every epoch has one order of the training rows, the same on every process without any
communication (a permutation drawn from a generator seeded with ``seed + epoch``). It is cut into
global batches of ``train_batch_size`` rows, as one process would; each global batch is split into
``world_size`` contiguous parts, part r for rank r. So the processes together train on exactly the
global batch a single process would take, and every process runs the same number of steps
(``DistributedDataParallel`` needs that). A last global batch smaller than ``world_size`` rows is
skipped (at most ``world_size - 1`` rows an epoch, different ones each epoch).

Evaluation: the evaluation loader's batches (RecBole's, unchanged) are split into ``world_size``
contiguous runs of batches; the results are gathered back in batch order
(:mod:`recbole_sasrec_ext.parallel.evaluation`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The row order (n,) of ``epoch``: a permutation seeded with ``seed + epoch`` (or 0..n-1)."""
    if not shuffle:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator)  # (n,)


def rank_batches(
    order: torch.Tensor, batch_size: int, rank: int, world_size: int
) -> list[torch.Tensor]:
    """Rank ``rank``'s part of every global batch of ``order`` (global batches of ``batch_size``
    rows, each split into ``world_size`` contiguous parts whose sizes differ by at most one).
    Global batches with fewer than ``world_size`` rows are skipped."""
    parts = []
    for batch in order.split(batch_size):  # (<= batch_size,)
        if len(batch) < world_size:
            continue
        parts.append(batch.tensor_split(world_size)[rank])  # (about batch_size / world_size,)
    return parts


def batch_count(n: int, batch_size: int, world_size: int) -> int:
    """Number of steps an epoch of ``n`` rows takes on every rank (see :func:`rank_batches`)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= world_size else 0)


def batch_range(n_batches: int, rank: int, world_size: int) -> range:
    """The contiguous run of evaluation batches ``rank`` scores (sizes differ by at most one)."""
    base, extra = divmod(n_batches, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


class ShardedTrainLoader:
    """A training loader of one rank: RecBole's (or the device) loader's rows, in the order of
    :func:`epoch_order`, this rank's part of each global batch (:func:`rank_batches`).

    Batches are built by the wrapped loader: ``batch_of(index)`` when it has one (the device
    loader: one ``index_select`` per field), else RecBole's ``collate_fn`` (rows, data transform
    and training negatives, drawn per rank). Every other attribute is the wrapped loader's.
    Call :meth:`set_epoch` before each epoch (the trainer does).
    """

    def __init__(self, loader, rank: int, world_size: int, seed: int):
        self.loader = loader
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return batch_count(self.loader.sample_size, self.loader.step, self.world_size)

    def __iter__(self) -> Iterator:
        order = epoch_order(self.loader.sample_size, self.seed, self.epoch,
                            bool(self.loader.shuffle))
        build = getattr(self.loader, "batch_of", None)
        for index in rank_batches(order, self.loader.step, self.rank, self.world_size):
            yield build(index) if build is not None else self.loader.collate_fn(index.tolist())

    def __getattr__(self, name: str):
        if name == "loader":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


def eval_batches(loader, rank: int, world_size: int) -> Iterator:
    """The evaluation batches of ``rank``: RecBole's batches (same rows as one process scores
    them), the contiguous run :func:`batch_range` of them."""
    indices = list(loader.batch_sampler)  # RecBole's batches of row (or user) indices, in order
    for i in batch_range(len(indices), rank, world_size):
        yield loader.collate_fn(indices[i])
