"""``train_stride``: several training rows per long history, each training target exactly once."""

import pytest
from conftest import fast_config, write_inter

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.data import TARGET_LIST_FIELD


@pytest.fixture
def long_data(tmp_path):
    rows = [(1, i, i) for i in range(1, 11)] + [(2, i, i) for i in (3, 1, 2, 5)]
    return write_inter(tmp_path / "data", "long", rows)


def _train_rows(data, **extra):
    config = Config("SASRec", "long",
                    config_dict=fast_config(data, MAX_ITEM_LIST_LENGTH=3, **extra))
    dataset, train, valid, _, _ = build(config)
    inter = train._dataset.inter_feat
    rows = []
    for r in range(len(inter)):
        user = str(dataset.id2token(dataset.uid_field, int(inter["user_id"][r])))
        n = int(inter["item_length"][r])
        token = lambda i: str(dataset.id2token(dataset.iid_field, int(i))) if i > 0 else "-"
        seq = [token(i) for i in inter["item_id_list"][r, :n]]
        targets = [token(t) for t in inter[TARGET_LIST_FIELD][r, :n]]
        rows.append((user, seq, targets))
    valid_targets = sorted(
        dataset.id2token(dataset.iid_field, valid._dataset.inter_feat["item_id"]).tolist()
    )
    return (sorted(rows, key=lambda row: (row[0], int(row[1][0]) if row[0] == '1' else 0)),
            valid_targets)


def test_stride_rows_cover_every_training_target_once(long_data):
    rows, valid_targets = _train_rows(long_data, train_stride=2)
    assert rows == [  # user 1 trains on targets 2..8 (9 = validation, 10 = test)
        ("1", ["1", "2", "3"], ["2", "3", "4"]),
        ("1", ["3", "4", "5"], ["-", "5", "6"]),
        ("1", ["5", "6", "7"], ["-", "7", "8"]),
        ("2", ["1"], ["2"]),
    ]
    assert valid_targets == ["3", "9"]


def test_stride_zero_is_the_last_window_only(long_data):
    rows, valid_targets = _train_rows(long_data, train_stride=0)
    assert rows == [("1", ["5", "6", "7"], ["6", "7", "8"]), ("2", ["1"], ["2"])]
    assert valid_targets == ["3", "9"]


def test_stride_longer_than_window_is_an_error(long_data):
    with pytest.raises(PluginError, match="config key 'train_stride' = 4"):
        Config("SASRec", "long",
               config_dict=fast_config(long_data, MAX_ITEM_LIST_LENGTH=3, train_stride=4))


def test_stride_equal_to_window_is_allowed_and_the_rule_is_declared(long_data):
    from recbole_sasrec_ext.contract.keys import TRAIN_STRIDE_AT_MOST_WINDOW
    from recbole_sasrec_ext.models.sasrec import SASRec

    assert TRAIN_STRIDE_AT_MOST_WINDOW in SASRec.CONFIG_RULES
    Config("SASRec", "long",
           config_dict=fast_config(long_data, MAX_ITEM_LIST_LENGTH=3, train_stride=3))
    with pytest.raises(PluginError) as error:
        TRAIN_STRIDE_AT_MOST_WINDOW.check({"train_stride": 4, "MAX_ITEM_LIST_LENGTH": 3})
    assert str(error.value) == (
        "config key 'train_stride' = 4 is not allowed: expected an int in "
        "[0, MAX_ITEM_LIST_LENGTH = 3] (0 = off)"
    )
