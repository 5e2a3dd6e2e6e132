"""Full-sequence training data: one training example per user, a loss at every position.

RecBole's ``SequentialDataset`` turns every prefix of every user into its own training sample
(ML-1M at length 200: 981k samples x 200 ids per epoch). The SASRec paper trains on each user's
whole sequence once per epoch with a target at every position. :class:`FullSequenceDataset` does
that inside RecBole: memory grows with users x max length, not interactions x max length.

The validation and test examples are RecBole's exactly (same leave-one-out split, same histories,
same targets; ``tests/test_full_sequence_dataset.py`` compares them with ``SequentialDataset``).
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_sasrec_ext.data.ordered_dataset import OrderedSequentialDataset
from recbole_sasrec_ext.errors import PluginError

#: Field with the next-item target of every input position of a training row (0 = no target).
TARGET_LIST_FIELD = "target_item_id_list"
#: Items held out per user by each leave-one-out mode of RecBole's ``eval_args.split``.
LEAVE_OUT = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}


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
        self.logger.debug("full-sequence rows for sequential recommendation")
        self._aug_presets()
        max_len = self.max_item_list_len
        self.set_field_property(TARGET_LIST_FIELD, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, max_len)
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)

        users = self.inter_feat[self.uid_field].numpy()
        items = self.inter_feat[self.iid_field].numpy()
        self.user_item_pairs = (users.copy(), items.copy())
        first = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]  # (U,) start of each user
        count = np.diff(np.r_[first, len(users)])  # (U,) interactions per user
        target, is_train, loss_after, train_mask = self._row_targets(first, count)
        self.train_pairs = (users[train_mask], items[train_mask])

        user_start = np.repeat(first, count)  # start of each interaction's user
        start = np.maximum(user_start[target], target - max_len)  # (R,) first history index
        length = target - start  # (R,) history length, 1..max_len
        offsets = np.arange(max_len)
        index = start[:, None] + offsets[None, :]  # (R, L) positions in inter_feat
        valid = offsets[None, :] < length[:, None]  # (R, L)
        index_t = torch.from_numpy(np.where(valid, index, 0))
        valid_t = torch.from_numpy(valid)

        new_data = self.inter_feat[torch.from_numpy(target)]
        new_dict = {self.item_list_length_field: torch.from_numpy(length.astype(np.int64))}
        for field in self.inter_feat:
            if field == self.uid_field:
                continue
            values = self.inter_feat[field]
            gathered = values[index_t]  # (R, L, ...)
            mask = valid_t.view(valid_t.shape + (1,) * (gathered.dim() - 2))
            new_dict[getattr(self, f"{field}_list_field")] = torch.where(mask, gathered, torch.zeros_like(gathered))
        next_items = torch.from_numpy(items)[torch.from_numpy(np.where(valid, index + 1, 0))]  # (R, L)
        has_loss = (index + 1) > loss_after[:, None]  # (R, L) targets this row trains on
        train_rows = torch.from_numpy(is_train[:, None] & has_loss) & valid_t
        new_dict[TARGET_LIST_FIELD] = torch.where(train_rows, next_items, torch.zeros_like(next_items))
        new_data.update(Interaction(new_dict))
        self.inter_feat = new_data

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
            f"rows: {len(self.inter_feat)}",
        ])

    def _row_targets(self, first: np.ndarray, count: np.ndarray):
        """Index (in the user-sorted interactions) of the last target of each row, in RecBole's
        leave-one-out order: the user's training rows first (in time order), then its held-out rows;
        whether a row is a training row; and the index after which its targets carry a loss.

        A user with ``n`` interactions has ``k = n - 1`` prefix samples in RecBole; RecBole holds out
        ``m = min(leave_out, k - 1)`` of them and trains on the first ``k - m``.
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
        row_rank = np.arange(rows_per_user.sum()) - np.repeat(np.cumsum(rows_per_user) - rows_per_user, rows_per_user)
        back = n_windows[row_user] - 1 - row_rank  # windows after this one (training rows)
        is_train = back >= 0
        target = np.where(is_train, train_last[row_user] - back * stride, train_last[row_user] - back)
        is_earliest = row_rank == 0
        loss_after = np.where(is_earliest | ~is_train, first[row_user], target - stride)
        # interactions that belong to a training sequence: positions < train_last + 1 of users with rows
        position = np.arange(count.sum()) - np.repeat(first, count)
        train_mask = np.repeat(has_rows, count) & (position <= np.repeat(n_train, count))
        return target, is_train, loss_after, train_mask
