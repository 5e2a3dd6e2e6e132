"""The plugin's models in a plain RecBole pipeline (RecBole's "customize a model" guide pattern):
RecBole's own Config, create_dataset, data_preparation and Trainer, unmodified."""

from __future__ import annotations

import logging

import pytest
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import init_seed

import recbole_sasrec_ext  # noqa: F401  (the import is what makes RecBole 1.2.1 work today)
from recbole_sasrec_ext.model_defaults import yaml_defaults
from recbole_sasrec_ext.models.rksa import RKSA
from recbole_sasrec_ext.models.sasrec import SASRec


def _plain_pipeline(model_class, data_path, caplog):
    config = Config(
        model=model_class,
        dataset="tiny",
        config_dict={
            "data_path": str(data_path),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "train_neg_sample_args": None,
            "loss_type": "CE",
            "epochs": 1,
            "MAX_ITEM_LIST_LENGTH": 10,
            "hidden_size": 16,
            "inner_size": 16,
            "n_heads": 1,
            "show_progress": False,
            "checkpoint_dir": "saved",
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = model_class(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    with caplog.at_level(logging.INFO):
        trainer.fit(train_data, valid_data, saved=True)  # RecBole's checkpoint, weights-only
    result = trainer.evaluate(test_data, load_best_model=True)
    return config, model, result


@pytest.mark.parametrize("model_class", [SASRec, RKSA])
def test_plain_recbole_pipeline_trains_to_a_test_metric(model_class, tiny_data, caplog):
    config, _, result = _plain_pipeline(model_class, tiny_data, caplog)
    assert set(result) >= {"ndcg@10", "hit@10"}
    assert 0.0 <= result["ndcg@10"] <= result["hit@10"] <= 1.0
    # RecBole's Config left the plugin-only keys unset: the model took its yaml's defaults
    assert config["layer_norm"] == yaml_defaults(model_class.__name__)["layer_norm"] == "pre"
    assert config["scale_embedding"] is True
    # the prefix-sample data is recognised and the faster route named, once
    notes = [r for r in caplog.records if "prefix samples" in r.getMessage()]
    assert len(notes) <= 1


def test_prefix_sample_loss_is_the_last_position_loss(tiny_data, caplog):
    """On RecBole's prefix samples the loss is the CE of the last position against ITEM_ID."""
    import torch
    import torch.nn.functional as F

    config, model, _ = _plain_pipeline(SASRec, tiny_data, caplog)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    batch = next(iter(train_data)).to(model.device)
    model.eval()
    with torch.no_grad():
        loss = model.calculate_loss(batch)
        hidden = model.forward(batch)  # (B, L, d)
        last = hidden[torch.arange(len(hidden)), batch["item_length"] - 1]  # (B, d)
        logits = last @ model.embedding.item.weight.T  # (B, n_items)
        expected = F.cross_entropy(logits[:, 1:], batch["item_id"] - 1)
    assert "target_item_id_list" not in batch
    torch.testing.assert_close(loss, expected)


def test_fill_missing_takes_yaml_defaults_only_for_absent_keys():
    from recbole_sasrec_ext.model_defaults import fill_missing

    class FakeConfig:
        def __init__(self, values):
            self.final_config_dict = dict(values)

        def __setitem__(self, key, value):
            self.final_config_dict[key] = value

    config = FakeConfig({"hidden_size": 64, "adam_betas": None})
    filled = fill_missing(config, "SASRec")
    assert config.final_config_dict["hidden_size"] == 64  # RecBole's value kept
    assert config.final_config_dict["adam_betas"] is None  # an explicit None kept
    assert config.final_config_dict["layer_norm"] == "pre" and "layer_norm" in filled
    assert "hidden_size" not in filled and fill_missing(FakeConfig({}), "NoSuchModel") == []
