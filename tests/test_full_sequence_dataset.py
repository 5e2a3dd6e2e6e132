"""Full-sequence training data: RecBole's validation/test examples exactly, one training row per
user with a target at every position."""

import numpy as np
import pytest
from conftest import fast_config, write_inter
from recbole.data.dataset import SequentialDataset

from recbole_sasrec_ext import Config
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data import TARGET_LIST_FIELD, FullSequenceDataset


def _triples(ds):
    """(user token, history item tokens, target item token) of every row of a split."""
    uid, iid = ds.uid_field, ds.iid_field
    feat = ds.inter_feat
    out = []
    for u, seq, n, t in zip(
        feat[uid].numpy(), feat[iid + "_list"].numpy(), feat["item_length"].numpy(),
        feat[iid].numpy(),
    ):
        out.append((ds.id2token(uid, u), tuple(ds.id2token(iid, seq[:n])), ds.id2token(iid, t)))
    return sorted(out)


@pytest.mark.parametrize("split", ["valid_and_test", "test_only"])
def test_valid_and_test_examples_equal_recbole(tiny_data, split):
    cfg = fast_config(tiny_data, eval_args={"split": {"LS": split}, "order": "TO", "mode": "full"})
    plugin = FullSequenceDataset(Config("SASRec", "tiny", config_dict=cfg)).build()
    recbole = SequentialDataset(Config("RecBole.SASRec", "tiny", config_dict=cfg)).build()
    for phase in (1, 2):
        assert _triples(plugin[phase]) == _triples(recbole[phase])
    assert len(_triples(plugin[2])) > 0


def test_training_rows_are_whole_sequences_with_shifted_targets(tmp_path):
    # user 1: 6 items (times in order), user 2: 2 items, user 3: 1 item
    rows = [(1, i, i) for i in (11, 12, 13, 14, 15, 16)] + [(2, 21, 0), (2, 22, 1), (3, 31, 0)]
    data = write_inter(tmp_path, "six", rows)
    cfg = fast_config(data, MAX_ITEM_LIST_LENGTH=2, train_stride=0)  # one row per user
    ds = FullSequenceDataset(Config("SASRec", "six", config_dict=cfg))
    train = ds.build()[0]
    tok = lambda ids: [ds.id2token("item_id", i) if i else "0" for i in ids]
    rows = {ds.id2token("user_id", u): (tok(s), tok(t), int(n)) for u, s, t, n in zip(
        train.inter_feat["user_id"].numpy(), train.inter_feat["item_id_list"].numpy(),
        train.inter_feat[TARGET_LIST_FIELD].numpy(), train.inter_feat["item_length"].numpy())}
    assert len(train) == 2  # one row per user with >= 2 items
    # user 1 trains on 11..14 (15 valid, 16 test); its last max_len+1 = 3 items are 12, 13, 14
    assert rows["1"] == (["12", "13"], ["13", "14"], 2)
    assert rows["2"] == (["21", "0"], ["22", "0"], 1)
    users, items = ds.train_pairs
    assert sorted(
        ds.id2token("item_id", items[users == ds.token2id("user_id", "1")])
    ) == ["11", "12", "13", "14"]


def test_rows_grow_with_users_not_interactions(tmp_path):
    data = write_inter(tmp_path, "long", [(u, i, i) for u in (1, 2) for i in range(1, 301)])
    ds = FullSequenceDataset(Config(
        "SASRec", "long", config_dict=fast_config(data, MAX_ITEM_LIST_LENGTH=50, train_stride=0)
    ))
    train, valid, test = ds.build()
    assert (len(train), len(valid), len(test)) == (2, 2, 2)


def test_random_split_is_refused(tiny_data):
    cfg = fast_config(tiny_data,
                      eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "mode": "full"})
    with pytest.raises(PluginError, match="eval_args.split"):
        FullSequenceDataset(Config("SASRec", "tiny", config_dict=cfg))


def test_missing_time_field_keeps_file_order(tmp_path):
    rows = [(1, 5), (1, 3), (1, 9), (1, 1), (2, 4), (2, 2), (2, 8)]
    data = write_inter(tmp_path, "untimed", rows, header="user_id:token\titem_id:token")
    ds = FullSequenceDataset(Config("SASRec", "untimed", config_dict=fast_config(data)))
    test = ds.build()[2]
    got = sorted(_triples(test))
    assert got == [("1", ("5", "3", "9"), "1"), ("2", ("4", "2"), "8")]


def test_memory_is_interactions_once_plus_users_times_max_length(tmp_path):
    # 3 users with 300, 40 and 5 interactions; L = 20: the splits hold rows x L ids per list
    # field, the data set the interactions once; nothing is interactions x L
    rows = [(u, i, i) for u, n in ((1, 300), (2, 40), (3, 5)) for i in range(1, n + 1)]
    data = write_inter(tmp_path, "mem", rows)
    ds = FullSequenceDataset(Config(
        "SASRec", "mem", config_dict=fast_config(data, MAX_ITEM_LIST_LENGTH=20, train_stride=0)
    ))
    splits = ds.build()
    n, L = len(rows), 20
    assert {k: tuple(v.shape) for k, v in ds.inter_feat.interaction.items()} == {
        "user_id": (n,), "item_id": (n,), "timestamp": (n,)}
    users, items = ds.user_item_pairs  # views of the interactions, not copies
    assert np.shares_memory(users, ds.inter_feat["user_id"].numpy())
    assert np.shares_memory(items, ds.inter_feat["item_id"].numpy())
    train, valid, test = (s.inter_feat.interaction for s in splits)
    assert {k: tuple(v.shape) for k, v in train.items()} == {
        "user_id": (3,), "item_id": (3,), "timestamp": (3,), "item_length": (3,),
        "item_id_list": (3, L), "timestamp_list": (3, L), TARGET_LIST_FIELD: (3, L)}
    for held_out in (valid, test):  # no target list: held-out rows train nothing
        assert {k: tuple(v.shape) for k, v in held_out.items()} == {
            "user_id": (3,), "item_id": (3,), "timestamp": (3,), "item_length": (3,),
            "item_id_list": (3, L), "timestamp_list": (3, L)}
