"""RKSA at model level: co-occurrence from the training split only, causality, explanations,
checkpoint round trip."""

import pytest
import torch
from conftest import fast_config, write_inter
from recbole.data.interaction import Interaction

from recbole_sasrec_ext import Config, load_data_and_model, run
from recbole_sasrec_ext.apps.quick_start import build


def _build(data, **extra):
    return build(Config("RKSA", "seq", config_dict=fast_config(data, **extra)))


@pytest.fixture
def seq_data(tmp_path):
    # user u sees items (u, u+1, ..., u+5) in order; item 99 is only ever a held-out (test) item
    rows = ([(u, u + k, k) for u in range(1, 9) for k in range(5)]
            + [(u, 99, 5) for u in range(1, 9)])
    return write_inter(tmp_path, "seq", rows)


def test_cooccurrence_uses_training_split_only(seq_data):
    dataset, *_, model = _build(seq_data)
    held_out = dataset.token2id("item_id", "99")
    block = model.cooccurrence.block(torch.tensor([[held_out, held_out]]))
    assert block.abs().sum() == 0  # a test item never contributes
    # validation items (each user's 5th item, u+4) are held out too
    users, items = dataset.train_pairs
    assert held_out not in set(items.tolist())
    one = dataset.token2id("item_id", "1")
    two = dataset.token2id("item_id", "2")
    # only user 1 trains on both
    assert model.cooccurrence.block(torch.tensor([[one, two]]))[0, 0, 1] == 1


@pytest.mark.parametrize("training", [False, True])
def test_causality(seq_data, training):
    *_, model = _build(seq_data, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    model.train(training)
    seq_a = torch.tensor([[1, 2, 3, 4, 5, 0, 0, 0, 0, 0]])
    seq_b = torch.tensor([[1, 2, 3, 7, 8, 0, 0, 0, 0, 0]])
    outs = []
    for seq in (seq_a, seq_b):
        torch.manual_seed(0)
        outs.append(model(Interaction({"item_id_list": seq, "item_length": torch.tensor([5]),
                                       "user_id": torch.tensor([1])})))
    assert torch.allclose(outs[0][0, :3], outs[1][0, :3], atol=1e-5)
    assert not torch.allclose(outs[0][0, 3], outs[1][0, 3])


def test_explanation_and_checkpoint_round_trip(seq_data):
    result = run("RKSA", "seq", config_dict=fast_config(seq_data, epochs=2, kernel_loss_weight=0.5))
    ex = result.explanation
    assert ex is not None and set(ex.mixture) == {"co-occurrence", "item", "user"}
    assert len(ex.attention) == len(ex.history) and abs(sum(ex.attention) - 1) < 1e-4
    assert ex.recommended not in ex.history
    assert abs(sum(ex.mixture.values()) - 1) < 1e-5
    config, model, _, _, _, test = load_data_and_model(result.checkpoint)
    from recbole_sasrec_ext.training.registry import get_trainer

    again = get_trainer(config["MODEL_TYPE"], config["model"])(config, model).evaluate(
        test, load_best_model=False
    )
    assert {k: float(v) for k, v in again.items()} == result.test_result


def test_rksa_keys_are_validated(seq_data):
    from recbole_sasrec_ext import PluginError

    with pytest.raises(PluginError, match="'kernel_loss_weight'"):
        Config("RKSA", "seq", config_dict=fast_config(seq_data, kernel_loss_weight=-1.0))
