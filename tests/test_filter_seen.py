"""``filter_seen``: the user's earlier items are removed from full ranking, the target never."""

import numpy as np
import pytest
import torch
from conftest import fast_config, write_inter
from recbole.trainer import Trainer

from recbole_sasrec_ext import Config, PluginError
from recbole_sasrec_ext.apps.quick_start import _protocol, build
from recbole_sasrec_ext.evaluation.seen_items import SeenItems
from recbole_sasrec_ext.training.registry import get_trainer

#: user token -> items in time order. User 2 repeats item 3 in training; user 3's test target (2)
#: is a repeat of a training item; user 4 has 3 items (a test row, no validation row).
SEQUENCES = {1: [1, 2, 3, 4, 5], 2: [3, 6, 3, 7, 8], 3: [2, 5, 9, 2], 4: [4, 1, 2]}
#: (user token, phase) -> items expected at -inf (seen before the target, target excluded).
EXPECTED = {
    (1, "valid"): {1, 2, 3}, (1, "test"): {1, 2, 3, 4},
    (2, "valid"): {3, 6}, (2, "test"): {3, 6, 7},
    (3, "valid"): {2, 5}, (3, "test"): {5, 9},
    (4, "test"): {4, 1},
}


@pytest.fixture
def hand_data(tmp_path):
    rows = [(u, i, t) for u, items in SEQUENCES.items() for t, i in enumerate(items)]
    return write_inter(tmp_path / "data", "hand", rows[::-1])  # file order reversed: time orders


def _masked_columns(model_name, data, phase, **extra):
    extra = {"filter_seen": True, "MAX_ITEM_LIST_LENGTH": 2, "train_neg_sample_args": None, **extra}
    config = Config(model_name, "hand", config_dict=fast_config(data, **extra))
    dataset, _, valid, test, model = build(config)
    model.full_sort_predict = lambda inter: torch.zeros(len(inter), dataset.item_num)  # all ties
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    captured = []
    original = trainer._full_sort_batch_eval
    trainer._full_sort_batch_eval = lambda batch: captured.append(original(batch)) or captured[-1]
    trainer.evaluate(valid if phase == "valid" else test, load_best_model=False)
    found = {}
    for interaction, scores, _, targets in captured:
        for row, user in enumerate(interaction[config["USER_ID_FIELD"]].tolist()):
            masked = torch.nonzero(torch.isinf(scores[row])).flatten().tolist()
            assert scores[row, targets[row]] == 0  # the target stays rankable
            token = int(dataset.id2token(dataset.uid_field, user))
            found[token] = {int(dataset.id2token(dataset.iid_field, i)) for i in masked if i != 0}
    return found


@pytest.mark.parametrize("model_name", ["SASRec", "GRU4Rec"])
@pytest.mark.parametrize("phase", ["valid", "test"])
def test_seen_items_masked_target_kept(hand_data, model_name, phase):
    found = _masked_columns(model_name, hand_data, phase)
    expected = {u: items for (u, p), items in EXPECTED.items() if p == phase}
    assert found == expected


def test_off_masks_nothing_but_padding(hand_data):
    found = _masked_columns("SASRec", hand_data, "test", filter_seen=False)
    assert found == {1: set(), 2: set(), 3: set(), 4: set()}


@pytest.mark.parametrize("model_name", ["GRU4Rec", "RecBole.SASRec"])
def test_off_equals_recbole_trainer(tiny_data, model_name):
    extra = {"train_neg_sample_args": None, "filter_seen": False, "metrics": ["Hit", "NDCG", "MRR"]}
    config = Config(model_name, "tiny", config_dict=fast_config(tiny_data, **extra))
    _, _, _, test, model = build(config)
    ours = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    off = ours.evaluate(test, load_best_model=False)
    recbole = Trainer(config, model).evaluate(test, load_best_model=False)
    assert dict(off) == dict(recbole)
    ours.filter_seen = True
    assert dict(ours.evaluate(test, load_best_model=False)) != dict(off)


def test_seen_items_from_pairs_exact():
    users = np.array([1, 1, 1, 2, 2, 3])
    items = np.array([5, 6, 5, 7, 8, 9])
    seen = SeenItems.from_pairs(users, items, n_users=4)
    assert seen.offsets.tolist() == [0, 0, 2, 3, 3] and seen.items.tolist() == [5, 6, 7]
    scores = torch.zeros(3, 10)
    seen.remove(scores, torch.tensor([1, 2, 3]), torch.tensor([5, 8, 9]))
    assert torch.isinf(scores).nonzero().tolist() == [[0, 6], [1, 7]]  # target 5 kept for user 1
    with pytest.raises(ValueError, match="sorted by user"):
        SeenItems.from_pairs(np.array([2, 1]), np.array([1, 1]), n_users=3)


def test_needs_leave_one_out_and_names_protocol(tiny_data):
    with pytest.raises(PluginError, match="config key 'filter_seen'"):
        Config("SASRec", "tiny", config_dict=fast_config(
            tiny_data, filter_seen=True,
            eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "mode": "full"}))
    on = Config("SASRec", "tiny", config_dict=fast_config(tiny_data, filter_seen=True))
    assert _protocol(on) == "full, seen removed"
    assert _protocol(Config("SASRec", "tiny", config_dict=fast_config(tiny_data))) == "full"
    with pytest.raises(PluginError, match="config key 'filter_seen' = 'yes'"):
        Config("SASRec", "tiny", config_dict=fast_config(tiny_data, filter_seen="yes"))


def test_benchmark_runs_name_the_protocol():
    from recbole_sasrec_ext.benchmark.report import PROTOCOLS
    from recbole_sasrec_ext.benchmark.suite import RunSpec

    full = {"eval_args": {"mode": "full"}}
    assert RunSpec("SASRec", "ml-1m", 1, full).protocol == "full"
    assert (RunSpec("SASRec", "ml-1m", 1, {**full, "filter_seen": True}).protocol
            == "full, seen removed")
    assert "full, seen removed" in PROTOCOLS
