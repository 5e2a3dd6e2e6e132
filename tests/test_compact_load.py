"""The compact atomic-file reader gives RecBole's ids and values exactly."""

import logging

import numpy as np
import pandas as pd
import torch
from conftest import fast_config, write_inter
from recbole.data.dataset import SequentialDataset

from recbole_sasrec_ext import Config
from recbole_sasrec_ext.data import OrderedSequentialDataset

ROWS = [  # tokens RecBole keeps as text ("007" is not 7), floats that need exact parsing
    ("u1", "007", "0.1", "1e9"), ("u1", "7", "2.675", "1000000000.5"), ("u2", "007", "", "3"),
    ("u 3", "x", "1.0000000000000002", "4"), ("u1", "a-b", "3.3", "1000000001"),
    ("u2", "7", "5", "5"), ("u 3", "007", "1", "6"), ("u2", "x", "9.999999999999999e22", "7"),
]


def _both(data, **extra):
    cfg = fast_config(data, load_col={"inter": ["user_id", "item_id", "rating", "timestamp"]},
                      MAX_ITEM_LIST_LENGTH=3, **extra)
    plugin = OrderedSequentialDataset(Config("RecBole.SASRec", "tok", config_dict=cfg))
    recbole = SequentialDataset(Config("RecBole.SASRec", "tok", config_dict=cfg))
    return plugin, recbole


def test_ids_and_values_equal_recbole(tmp_path):
    data = write_inter(tmp_path, "tok", ROWS,
                       header="user_id:token\titem_id:token\trating:float\ttimestamp:float")
    plugin, recbole = _both(data)
    for field in ("user_id", "item_id"):
        assert list(plugin.field2id_token[field]) == list(recbole.field2id_token[field])
    assert plugin.field2type == recbole.field2type and plugin.field2seqlen == recbole.field2seqlen
    mine, theirs = plugin.build(), recbole.build()
    for a, b in zip(mine, theirs):
        assert set(a.inter_feat.columns) == set(b.inter_feat.columns)
        for column in b.inter_feat.columns:
            assert a.inter_feat[column].dtype == b.inter_feat[column].dtype
            assert torch.equal(a.inter_feat[column].nan_to_num(-1),
                               b.inter_feat[column].nan_to_num(-1)), column
    assert "007" in plugin.field2token_id["item_id"] and "7" in plugin.field2token_id["item_id"]


def test_token_columns_are_categorical_before_remapping(tmp_path):
    data = write_inter(tmp_path, "tok", ROWS,
                       header="user_id:token\titem_id:token\trating:float\ttimestamp:float")
    cfg = fast_config(data, load_col={"inter": ["user_id", "item_id", "timestamp"]})
    ds = OrderedSequentialDataset.__new__(OrderedSequentialDataset)
    ds.config = Config("RecBole.SASRec", "tok", config_dict=cfg)
    ds.logger = logging.getLogger()
    ds._get_preset()
    ds._get_field_from_config()
    frame = ds._load_feat(str(data / "tok" / "tok.inter"), "inter")
    assert list(frame.columns) == ["user_id", "item_id", "timestamp"]  # load_col honoured
    assert isinstance(frame["item_id"].dtype, pd.CategoricalDtype)
    assert frame["timestamp"].dtype == np.float64
