"""Sampled evaluation (``uniNN``) with negatives that never change.

RecBole redraws the uni100 negatives at every evaluation (and allows items the user has already
interacted with), so scores drift between epochs and between models. :class:`FixedNegativeSampler`
draws, once, ``NN`` negatives per user and phase from the items the user never interacted with
(the SASRec paper's protocol), seeded by ``eval_neg_seed``: every model evaluated on the same data
set with the same seed sees the same candidates, every epoch.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from recbole_sasrec_ext.common.errors import PluginError

#: Phases and the offset added to the seed for each, so validation and test negatives differ.
PHASE_SEED_OFFSET = {"valid": 0, "test": 1}


def draw_fixed_negatives(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, num: int, seed: int
) -> np.ndarray:
    """``num`` uniform negatives per user (with replacement, as the SASRec paper), never an item
    the user interacted with. Item ids are ``1..n_items-1`` (0 is padding).

    Returns
    -------
    numpy.ndarray of shape (n_users, num)
    """
    used_keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
    # duplicates counted once
    distinct_per_user = np.bincount(used_keys // n_items, minlength=n_users)
    full = np.flatnonzero(distinct_per_user >= n_items - 1)
    if full.size:
        raise PluginError(
            f"cannot draw evaluation negatives: user index {full[0]} has interacted with every item"
        )
    rng = np.random.default_rng(seed)
    negatives = rng.integers(1, n_items, size=(n_users, num))  # (U, num)
    user_col = np.arange(n_users, dtype=np.int64)[:, None]
    todo = np.isin(user_col * n_items + negatives, used_keys)
    while todo.any():
        rows, cols = np.nonzero(todo)
        redraw = rng.integers(1, n_items, size=rows.size)
        negatives[rows, cols] = redraw
        todo[rows, cols] = np.isin(rows.astype(np.int64) * n_items + redraw, used_keys)
    return negatives


class FixedNegativeSampler:
    """Drop-in for RecBole's evaluation sampler in ``uniNN`` mode (``sample_by_user_ids``,
    ``set_phase``, ``phase``), returning the same negatives for a user every time."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                 num: int, seed: int):
        self.num = num
        self.phase = None
        self._negatives = {
            phase: torch.from_numpy(
                draw_fixed_negatives(users, items, n_users, n_items, num, seed + offset)
            )
            for phase, offset in PHASE_SEED_OFFSET.items()
        }

    def set_phase(self, phase: str) -> FixedNegativeSampler:
        if phase not in self._negatives:
            raise ValueError(
                f"phase '{phase}' has no fixed negatives (only {list(self._negatives)})"
            )
        sampler = copy.copy(self)
        sampler.phase = phase
        return sampler

    def negatives(self, user_ids) -> torch.Tensor:
        """The fixed negatives of these users in the current phase, shape (len(user_ids), num)."""
        return self._negatives[self.phase][torch.as_tensor(np.asarray(user_ids), dtype=torch.long)]

    def sample_by_user_ids(self, user_ids, item_ids, num) -> torch.Tensor:
        """RecBole's layout: ``result[k * len(user_ids) + i]`` is the k-th negative of user i."""
        if num != self.num:
            raise ValueError(f"asked for {num} negatives, sampler was built for {self.num}")
        return self.negatives(user_ids).T.reshape(-1)
