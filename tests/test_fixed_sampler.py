"""Sampled evaluation draws the same negatives every time, never the user's items."""

import numpy as np
import torch
from conftest import fast_config

from recbole_sasrec_ext import Config, create_dataset, data_preparation
from recbole_sasrec_ext.data.fixed_sampler import FixedNegativeSampler, draw_fixed_negatives


def test_negatives_avoid_user_items_and_are_seeded():
    users = np.array([1, 1, 1, 2, 2])
    items = np.array([1, 2, 3, 4, 1])
    a = draw_fixed_negatives(users, items, n_users=3, n_items=7, num=50, seed=3)
    b = draw_fixed_negatives(users, items, n_users=3, n_items=7, num=50, seed=3)
    assert np.array_equal(a, b)
    assert set(a[1]) <= {4, 5, 6} and set(a[2]) <= {2, 3, 5, 6}
    assert a.min() >= 1 and a.max() <= 6
    assert not np.array_equal(a, draw_fixed_negatives(users, items, 3, 7, 50, seed=4))


def test_recbole_layout_and_phases():
    sampler = FixedNegativeSampler(np.array([1]), np.array([1]), 3, 50, num=4, seed=0)
    valid, test = sampler.set_phase("valid"), sampler.set_phase("test")
    out = valid.sample_by_user_ids(np.array([1, 2]), np.array([9, 9]), 4)
    neg = valid.negatives([1, 2])
    assert out.tolist() == [neg[0, 0], neg[1, 0], neg[0, 1], neg[1, 1],
                            neg[0, 2], neg[1, 2], neg[0, 3], neg[1, 3]]
    assert torch.equal(valid.sample_by_user_ids([1], [9], 4), valid.sample_by_user_ids([1], [9], 4))
    assert not torch.equal(valid.negatives([1, 2]), test.negatives([1, 2]))


def _candidates(model, data_path):
    cfg = fast_config(data_path,
                      eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni20"})
    config = Config(model, "tiny", config_dict=cfg)
    _, valid, test = data_preparation(config, create_dataset(config))
    out = {}
    for loader in (valid, test):
        for inter, _, _, _ in loader:
            users = inter["user_id"].tolist()
            for u, i in zip(users, inter["item_id"].tolist()):
                out.setdefault((loader._sampler.phase, u), []).append(i)
    return out


def test_same_candidates_every_epoch_and_for_every_model(tiny_data):
    sasrec = _candidates("SASRec", tiny_data)
    assert sasrec == _candidates("SASRec", tiny_data)
    assert sasrec == _candidates("GRU4Rec", tiny_data)
    assert all(len(v) == 21 for v in sasrec.values())
