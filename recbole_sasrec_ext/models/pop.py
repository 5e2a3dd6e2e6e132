"""Popularity: every user gets the items most often interacted with in the training split."""

from __future__ import annotations

import numpy as np
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_sasrec_ext.contract.keys import Key, Unavailable
from recbole_sasrec_ext.data.full_sequence_dataset import FullSequenceDataset


class Pop(SequentialRecommender):
    """Scores every item by its exact number of training-split interactions.

    RecBole's ``Pop`` counts an item once per batch (a non-accumulating index update) and counts
    the sampled training negatives as popular, so its result depends on ``train_batch_size``.
    This one counts ``dataset.train_pairs`` (every training-split interaction, held-out items
    excluded) once, at construction; training does nothing (one epoch, a zero loss).
    """

    input_type = InputType.POINTWISE
    CONFIG_KEYS: tuple[Key, ...] = ()
    CONFIG_RULES = (Unavailable("length_split", "Pop", "it counts items and trains no batch"),)
    DATASET_CLASS = FullSequenceDataset  # for ``train_pairs``
    TARGETS_AT_EVERY_POSITION = False
    ONE_PASS = True  # fitted at construction: the run summary's stopped_by is ``one_pass``
    NEEDS_TRAINING_NEGATIVES = False  # counts the training split; learns nothing

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        _, items = dataset.train_pairs
        counts = np.bincount(items, minlength=self.n_items).astype(np.float32)
        self.register_buffer("item_count", torch.from_numpy(counts))  # (n_items,)
        self.fake_loss = nn.Parameter(torch.zeros(1))

    def calculate_loss(self, interaction) -> torch.Tensor:
        return self.fake_loss.sum() * 0.0

    def predict(self, interaction) -> torch.Tensor:
        return self.item_count[interaction[self.ITEM_ID]]  # (B,)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        batch = interaction[self.ITEM_SEQ].size(0)
        return self.item_count.repeat(batch, 1)  # (B, n_items), writable (RecBole masks column 0)
