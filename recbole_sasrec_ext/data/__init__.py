"""Data: atomic-file checks, full-sequence training data, fixed evaluation negatives."""

from recbole_sasrec_ext.data.full_sequence_dataset import TARGET_LIST_FIELD, FullSequenceDataset
from recbole_sasrec_ext.data.ordered_dataset import OrderedSequentialDataset
from recbole_sasrec_ext.data.preparation import create_dataset, data_preparation

__all__ = [
    "TARGET_LIST_FIELD",
    "FullSequenceDataset",
    "OrderedSequentialDataset",
    "create_dataset",
    "data_preparation",
]
