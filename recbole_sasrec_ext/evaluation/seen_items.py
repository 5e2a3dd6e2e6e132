"""Items a user has already seen, removed from full ranking (config key ``filter_seen``).

Published full-ranking numbers (SASRec+, gSASRec, BERT4Rec re-evaluations) rank the held-out item
against every item the user has *not* interacted with before it; RecBole 1.2.1 does that for
general models but keeps the history in the ranking for sequential ones.

Under the leave-one-out split (``eval_args.split: {LS: ...}``) a validation target is each user's
second-to-last interaction and a test target the last one. The items "seen before the target" are
then the training items at validation and the training + validation items at test. Both are
covered by one set per user — every item before the user's last interaction — because the
target's own score is always restored after masking: at validation that set is the training items
plus the validation target, and the target stays rankable. So is a target the user had already
consumed earlier (repeat consumption): it is never removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.contract.plan import is_leave_one_out


@dataclass(frozen=True)
class SeenItems:
    """Per user, the items before the user's last interaction, stored CSR-style.

    Attributes
    ----------
    offsets : torch.LongTensor (n_users + 1,)
        ``items[offsets[u]:offsets[u + 1]]`` are user u's seen items.
    items : torch.LongTensor (n_seen,)
    """

    offsets: torch.Tensor
    items: torch.Tensor

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> SeenItems:
        """Build from every (user, item) interaction sorted by user, then time.

        Parameters
        ----------
        users, items : numpy int arrays (N,)
            Interactions of the whole data set (all splits), each user's rows contiguous and
            in time order (``dataset.user_item_pairs``).
        n_users : int
            Number of user ids (including the padding id 0).
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if len(users) and np.any(users[1:] < users[:-1]):
            raise ValueError("interactions must be sorted by user (then time)")
        is_last = np.r_[users[1:] != users[:-1], True] if len(users) else np.zeros(0, bool)
        keep = ~is_last  # (N,) every interaction but each user's last
        counts = np.bincount(users[keep], minlength=n_users)  # (U,)
        offsets = np.r_[0, np.cumsum(counts)]  # (U + 1,)
        return cls(torch.from_numpy(offsets), torch.from_numpy(items[keep].copy()))

    def to(self, device: torch.device | str) -> SeenItems:
        return SeenItems(self.offsets.to(device), self.items.to(device))

    def batch_pairs(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) index pairs of the seen items of a batch of users (B,)."""
        start = self.offsets[users]  # (B,)
        count = self.offsets[users + 1] - start  # (B,)
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), count)  # (S,)
        first = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)  # (S,)
        within = torch.arange(len(rows), device=users.device) - first  # (S,)
        return rows, self.items[start[rows] + within]  # (S,), (S,)

    def remove(
        self, scores: torch.Tensor, users: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Set the scores (B, n_items) of each row's seen items to -inf, in place, keeping the
        score of the row's target (B,). Returns ``scores``."""
        rows = torch.arange(len(users), device=scores.device)  # (B,)
        kept = scores[rows, targets].clone()  # (B,)
        seen_rows, seen_items = self.batch_pairs(users.to(self.offsets.device))
        scores[seen_rows.to(scores.device), seen_items.to(scores.device)] = -torch.inf
        scores[rows, targets] = kept
        return scores


def check_filter_seen(config) -> None:
    """``filter_seen: True`` needs the leave-one-out split (a validation target is each user's
    second-to-last interaction, a test target the last); raise :class:`PluginError` otherwise."""
    if not config.get("filter_seen"):
        return
    split = (config.get("eval_args") or {}).get("split")
    if not is_leave_one_out(split):
        raise PluginError(
            f"config key 'filter_seen' = True is not allowed with eval_args.split = {split!r}: "
            "it needs the leave-one-out split {'LS': 'valid_and_test'} "
            "(or 'valid_only'/'test_only')"
        )
