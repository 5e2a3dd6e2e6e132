"""The (user, item) pairs of the training split, from the plugin's data or RecBole's own."""

from __future__ import annotations

import numpy as np


def training_pairs(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of every training-split interaction.

    :class:`~recbole_sasrec_ext.data.FullSequenceDataset` records them (``train_pairs``). On
    RecBole's own ``SequentialDataset`` (the training split of ``recbole.data.data_preparation``)
    every training interaction but a user's first is the target of exactly one prefix sample, and
    the first is the history of the sample of length 1.
    """
    pairs = getattr(dataset, "train_pairs", None)
    if pairs is not None:
        return pairs
    feat = dataset.inter_feat
    users = feat[dataset.uid_field].numpy()
    targets = feat[dataset.iid_field].numpy()
    # (R,) samples with one history item
    first = (feat[dataset.item_list_length_field] == 1).numpy()
    first_items = feat[dataset.item_id_list_field][:, 0].numpy()  # (R,)
    return np.r_[users, users[first]], np.r_[targets, first_items[first]]
