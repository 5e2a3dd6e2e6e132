"""A user's own model for the tests: the smallest RecBole sequential model (mean of the
history's item embeddings, full-softmax loss at the last position). Run through the benchmark as
``class: tiny_model:TinyModel`` with this folder on PYTHONPATH."""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn
from torch.nn import functional as F

from recbole_sasrec_ext.contract.keys import Key


class TinyModel(SequentialRecommender):
    """Scores items by a dot product with the mean embedding of the user's history."""

    input_type = InputType.POINTWISE  # RecBole needs it (or a loss_type key)
    # the plugin's model contract (recbole_sasrec_ext.contract.PluginModel)
    CONFIG_KEYS = (Key("tiny_width", int, low=1),)  # a key of its own
    CONFIG_RULES = ()
    DATASET_CLASS = None  # RecBole's choice: the plugin's OrderedSequentialDataset
    TARGETS_AT_EVERY_POSITION = False  # the loss reads the last position's target only
    ONE_PASS = False
    NEEDS_TRAINING_NEGATIVES = False  # a full-softmax loss

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding = nn.Embedding(self.n_items, config["tiny_width"], padding_idx=0)

    def _user(self, interaction) -> torch.Tensor:
        items = interaction[self.ITEM_SEQ]  # (B, L)
        mask = (items > 0).unsqueeze(-1).float()  # (B, L, 1)
        total = (self.embedding(items) * mask).sum(1)  # (B, d)
        return total / mask.sum(1).clamp(min=1.0)  # (B, d)

    def calculate_loss(self, interaction) -> torch.Tensor:
        logits = self._user(interaction) @ self.embedding.weight.T  # (B, n_items)
        return F.cross_entropy(logits, interaction[self.POS_ITEM_ID])

    def predict(self, interaction) -> torch.Tensor:
        items = self.embedding(interaction[self.ITEM_ID])  # (B, d)
        return (self._user(interaction) * items).sum(-1)  # (B,)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return self._user(interaction) @ self.embedding.weight.T  # (B, n_items)


class NotAModel:
    """Not a RecBole model (for the error message test)."""
