"""Full-sequence training data: one training example per user, a loss at every position.

RecBole's ``SequentialDataset`` turns every prefix of every user into its own training sample
(ML-1M at length 200: 981k samples x 200 ids per epoch). The SASRec paper trains on each user's
whole sequence once per epoch with a target at every position. :class:`FullSequenceDataset` does
that inside RecBole: memory grows with users x max length, not interactions x max length.

The validation and test examples are RecBole's exactly (same leave-one-out split, same histories,
same targets; ``tests/test_full_sequence_dataset.py`` compares them with ``SequentialDataset``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data.ordered_dataset import OrderedSequentialDataset

#: Field with the next-item target of every input position of a training row (0 = no target).
TARGET_LIST_FIELD = "target_item_id_list"
#: Items held out per user by each leave-one-out mode of RecBole's ``eval_args.split``.
LEAVE_OUT = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}
#: Rows written at a time (bounds the (rows, L) index arrays of :meth:`FullSequenceDataset._rows`).
ROW_CHUNK = 8192


class RowPlan(NamedTuple):
    """Every row of a :class:`FullSequenceDataset` (R,): the index of its last target in the
    user-sorted interactions, of its first history item, whether it is a training row, and the
    index after which its targets carry a loss."""

    target: np.ndarray
    start: np.ndarray
    is_train: np.ndarray
    loss_after: np.ndarray


def leave_one_out_parts(
    row_users: np.ndarray, order: np.ndarray, leave_one_num: int
) -> list[np.ndarray]:
    """RecBole's ``Dataset.leave_one_out`` on rows in ``order``, vectorised: rows grouped by user
    (users in order of first appearance), each user's last ``min(leave_one_num, n - 1)`` rows
    held out, the last one in the last part. Returns ``leave_one_num + 1`` arrays of row indices.
    """
    users = row_users[order]  # (R,) in RecBole's row order
    unique, first_seen = np.unique(users, return_index=True)
    rank = np.empty(int(unique.max()) + 1 if unique.size else 0, dtype=np.int64)
    rank[unique] = np.argsort(np.argsort(first_seen, kind="stable"), kind="stable")
    grouped = np.argsort(rank[users], kind="stable")  # (R,) positions, grouped by user
    group_users = users[grouped]
    group_start = np.r_[0, np.flatnonzero(group_users[1:] != group_users[:-1]) + 1]
    size = np.diff(np.r_[group_start, len(users)])  # (G,)
    held = np.minimum(leave_one_num, size - 1)  # RecBole's legal_leave_one_num
    position = np.arange(len(users)) - np.repeat(group_start, size)  # (R,) within the user
    train_end = np.repeat(size - held, size)
    part = np.where(position < train_end, 0,
                    leave_one_num + 1 - np.repeat(held, size) + position - train_end)
    rows = order[grouped]
    return [rows[part == k] for k in range(leave_one_num + 1)]


class FullSequenceDataset(OrderedSequentialDataset):
    """Per user, one training row (the user's whole training sequence, its last
    ``MAX_ITEM_LIST_LENGTH``+1 items, input and shifted targets) and RecBole's validation and test
    rows. Requires the leave-one-out split (``eval_args.split: {'LS': ...}``, order ``TO``).

    ``train_stride`` (config, int >= 0; 0 = off) adds rows for histories longer than the window:
    rows end every ``train_stride`` training targets back from the last one, each keeping the loss
    only on its last ``train_stride`` targets (the earliest row on all of its own), so every
    training target of the user is trained exactly once, with at least
    ``MAX_ITEM_LIST_LENGTH - train_stride`` items of context (RecBole's prefix samples also cover
    the whole history). The user's rows stay in time order, the held-out rows last.

    Attributes
    ----------
    train_pairs : tuple of numpy arrays
        (users, items) of every training-split interaction (not truncated): the items a model may
        learn statistics from (popularity, co-occurrence). Held-out items never appear here.
    user_item_pairs : tuple of numpy arrays
        (users, items) of every interaction, sorted by user then time (views of ``inter_feat``).

    Memory: the interactions once (three columns) and the rows (users x max length per list
    field); no interactions x max length array is ever built
    (``tests/test_full_sequence_dataset.py``).
    """

    def __init__(self, config):
        split = config["eval_args"]["split"]
        if not (isinstance(split, dict) and list(split) == ["LS"] and split["LS"] in LEAVE_OUT):
            raise PluginError(
                f"config key 'eval_args.split' = {split!r} is not allowed for {config['model']}: "
                f"expected {{'LS': one of {', '.join(map(repr, LEAVE_OUT))}}} (leave-one-out)"
            )
        super().__init__(config)

    def data_augmentation(self):
        """Sort the interactions by user and time and plan the rows (one index per row, no row
        data yet: :meth:`build` writes each split's rows directly)."""
        self.logger.debug("full-sequence rows for sequential recommendation")
        self._aug_presets()
        self.set_field_property(TARGET_LIST_FIELD, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION,
                                self.max_item_list_len)
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)

        # views: inter_feat is never reordered again
        users = self.inter_feat[self.uid_field].numpy()
        items = self.inter_feat[self.iid_field].numpy()
        self.user_item_pairs = (users, items)
        first = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]  # (U,) start of each user
        count = np.diff(np.r_[first, len(users)])  # (U,) interactions per user
        target, is_train, loss_after, self._train_mask = self._row_targets(first, count)
        user_start = first[np.searchsorted(first, target, side="right") - 1]  # (R,)
        start = np.maximum(user_start, target - self.max_item_list_len)  # (R,) first history index
        self._plan = RowPlan(target, start, is_train, loss_after)
        self._list_sources = [field for field in self.inter_feat if field != self.uid_field]

    @property
    def train_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of every training-split interaction (not truncated)."""
        users, items = self.user_item_pairs
        return users[self._train_mask], items[self._train_mask]

    def build(self):
        """RecBole's ``build`` for the leave-one-out split (same ordering, same split, same rows
        in the same order), writing each split's rows directly instead of all rows and then
        copies of them. Held-out rows have no :data:`TARGET_LIST_FIELD` (they train nothing).
        After it, this data set's ``inter_feat`` holds the interactions sorted by user and time."""
        if self.config["eval_args"]["order"] != "TO":  # as RecBole's SequentialDataset
            raise ValueError("The ordering args for sequential recommendation has to be 'TO'")
        if self.benchmark_filename_list is not None:
            return super().build()
        self._change_feat_format()  # -> data_augmentation: the row plan
        plan = self._plan
        row_time = self.inter_feat[self.time_field].numpy()[plan.target]  # (R,)
        order = np.argsort(row_time, kind="stable")  # RecBole's sort(by=time_field) of the rows
        mode = self.config["eval_args"]["split"]["LS"]
        parts = leave_one_out_parts(self.user_item_pairs[0][plan.target], order, LEAVE_OUT[mode])
        if mode == "valid_only":
            parts.append(parts[0][:0])
        elif mode == "test_only":
            parts = [parts[0], parts[0][:0], parts[1]]
        sources = {field: self.inter_feat[field] for field in self._list_sources}
        self._drop_unused_col()  # as RecBole's leave_one_out: the rows' own fields only
        return [self.copy(self._rows(part, sources, with_targets=i == 0))
                for i, part in enumerate(parts)]

    def _rows(self, rows: np.ndarray, sources: dict, with_targets: bool) -> Interaction:
        """The rows ``rows`` (indices into the plan): each field at the target, the history lists
        (right-padded with 0) and, for training rows, the target list; written in chunks."""
        plan, max_len = self._plan, self.max_item_list_len
        target, start = plan.target[rows], plan.start[rows]  # (n,)
        length = target - start  # (n,) history length, 1..max_len
        target_t = torch.from_numpy(target)
        data = {field: self.inter_feat[field][target_t] for field in self.inter_feat}
        data[self.item_list_length_field] = torch.from_numpy(length.astype(np.int64))
        lists = {getattr(self, f"{field}_list_field"): (values, torch.zeros(
            (len(rows), max_len) + values.shape[1:], dtype=values.dtype))
            for field, values in sources.items()}
        items = torch.from_numpy(self.user_item_pairs[1])
        targets = torch.zeros((len(rows), max_len), dtype=items.dtype) if with_targets else None
        offsets = np.arange(max_len)
        for lo in range(0, len(rows), ROW_CHUNK):
            hi = min(lo + ROW_CHUNK, len(rows))
            index = start[lo:hi, None] + offsets[None, :]  # (c, L) positions in inter_feat
            valid = offsets[None, :] < length[lo:hi, None]  # (c, L)
            index_t, invalid_t = (torch.from_numpy(np.where(valid, index, 0)),
                                  torch.from_numpy(~valid))
            for values, out in lists.values():
                gathered = values[index_t]  # (c, L, ...)
                out[lo:hi] = gathered.masked_fill_(
                    invalid_t.view(invalid_t.shape + (1,) * (gathered.dim() - 2)), 0
                )
            if targets is not None:
                r = rows[lo:hi]
                next_items = items[torch.from_numpy(np.where(valid, index + 1, 0))]  # (c, L)
                trains = (valid & plan.is_train[r, None]
                          & ((index + 1) > plan.loss_after[r, None]))  # (c, L)
                targets[lo:hi] = next_items.masked_fill_(torch.from_numpy(~trains), 0)
        data.update({field: out for field, (_, out) in lists.items()})
        if targets is not None:
            data[TARGET_LIST_FIELD] = targets
        return Interaction(data)

    def __str__(self) -> str:
        """The data, not the training rows: users, items, interactions, average sequence length."""
        users, _ = self.user_item_pairs
        n_users = len(np.unique(users))
        n_inter = len(users)
        return "\n".join([
            f"{self.dataset_name} (full-sequence rows, one training row per user)",
            f"users: {n_users}, items: {self.item_num - 1}, interactions: {n_inter}",
            (f"average sequence length: {n_inter / max(n_users, 1):.1f}"
             f" (maximum used: {self.max_item_list_len})"),
            f"rows: {len(self._plan.target)}",
        ])

    def _row_targets(self, first: np.ndarray, count: np.ndarray):
        """Index (in the user-sorted interactions) of the last target of each row, in RecBole's
        leave-one-out order: the user's training rows first (in time order), then its held-out rows;
        whether a row is a training row; and the index after which its targets carry a loss.

        A user with ``n`` interactions has ``k = n - 1`` prefix samples in RecBole; RecBole holds
        out ``m = min(leave_out, k - 1)`` of them and trains on the first ``k - m``.
        """
        leave_out = LEAVE_OUT[self.config["eval_args"]["split"]["LS"]]
        max_len = self.max_item_list_len
        stride = self.config["train_stride"] or 0
        k = count - 1
        held = np.clip(np.minimum(leave_out, k - 1), 0, None)
        n_train = k - held  # training targets per user (>= 1 whenever k >= 1)
        has_rows = k >= 1
        windows = np.ones_like(n_train)
        if stride:
            windows = 1 + np.maximum(0, -(-(n_train - max_len) // stride))  # ceil, >= 1
        n_windows = np.where(has_rows, windows, 0)
        rows_per_user = n_windows + np.where(has_rows, held, 0)
        # last target index of each training row (earliest first), then each held-out target
        train_last = first + n_train
        row_user = np.repeat(np.arange(len(first)), rows_per_user)
        row_rank = np.arange(rows_per_user.sum()) - np.repeat(
            np.cumsum(rows_per_user) - rows_per_user, rows_per_user
        )
        back = n_windows[row_user] - 1 - row_rank  # windows after this one (training rows)
        is_train = back >= 0
        target = np.where(is_train, train_last[row_user] - back * stride,
                          train_last[row_user] - back)
        is_earliest = row_rank == 0
        loss_after = np.where(is_earliest | ~is_train, first[row_user], target - stride)
        # interactions of a training sequence: first .. first + n_train of each user with rows
        edge = np.zeros(int(count.sum()) + 1, dtype=np.int8)
        np.add.at(edge, first[has_rows], 1)
        np.add.at(edge, (first + n_train + 1)[has_rows], -1)
        train_mask = np.cumsum(edge[:-1], dtype=np.int8).astype(bool)  # (N,)
        return target, is_train, loss_after, train_mask
