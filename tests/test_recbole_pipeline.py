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
    # RecBole's Config read RecBole's SASRec.yaml (or nothing, for RKSA): the model took the
    # plugin's defaults instead, the full-ranking recipe included, as the plugin's Config gives them
    expected = {"SASRec": "sasrec", "RKSA": "pre"}[model_class.__name__]
    assert config["layer_norm"] == expected and config["scale_embedding"] is True
    assert (config["n_layers"], config["hidden_act"]) == (1, "relu")  # RecBole's: 2, gelu
    assert config["inner_size"] == 16  # the user's value kept
    # the prefix-sample data is recognised and the faster route named, once
    notes = [r for r in caplog.records if "prefix samples" in r.getMessage()]
    assert len(notes) <= 1


def test_prefix_sample_loss_is_the_last_position_loss(tiny_data, caplog):
    """On RecBole's prefix samples the loss is the CE of the last position against ITEM_ID (with
    the full-ranking recipe's label smoothing, which RecBole's own Config route gets too)."""
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
        expected = F.cross_entropy(logits[:, 1:], batch["item_id"] - 1, label_smoothing=0.3)
    assert model.label_smoothing == 0.3
    assert "target_item_id_list" not in batch
    torch.testing.assert_close(loss, expected)


def test_apply_defaults_replaces_recbole_values_but_never_user_keys():
    from recbole_sasrec_ext.models.defaults import apply_defaults

    recbole = {"dataset": "tiny", "hidden_size": 64, "inner_size": 256, "hidden_act": "gelu",
               "adam_betas": None, "eval_args": {"mode": {"valid": "full", "test": "full"}},
               "MAX_ITEM_LIST_LENGTH": 50}
    final, user = dict(recbole), {"hidden_act": "gelu"}
    changed = apply_defaults(final, user, "SASRec", "tiny")
    assert final["inner_size"] == 64 and "inner_size" in changed  # RecBole's 256
    assert final["hidden_act"] == "gelu"  # the user's value kept
    assert final["train_stride"] == 25  # the full-ranking window rule
    assert "hidden_size" not in changed  # already the recipe's 64
    assert apply_defaults(final, user, "SASRec", "tiny") == {}  # applied once
    assert apply_defaults({"dataset": "tiny"}, {}, "NoSuchModel", "tiny") == {}

def _first_batch_loss(config, model_class):
    """The plugin's training loader for ``config`` and the loss of its first batch (eval mode),
    both seeded as a run seeds them."""
    import torch

    from recbole_sasrec_ext import create_dataset, data_preparation

    init_seed(config["seed"], config["reproducibility"])
    train, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = model_class(config, train._dataset)
    model.eval()
    with torch.no_grad():
        return train, model.calculate_loss(next(iter(train)))


@pytest.mark.parametrize("model_name", ["SASRec", "RKSA"])
def test_both_config_routes_give_the_same_settings_windows_and_first_loss(model_name, tiny_data):
    """RecBole's own Config + the plugin's data and model train exactly what the plugin's Config
    trains: the same model keys (the full-ranking recipe included), the same training rows and
    the same first-batch loss."""
    import torch

    from recbole_sasrec_ext import Config as PluginConfig
    from recbole_sasrec_ext import get_model

    user = {"data_path": str(tiny_data), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "MAX_ITEM_LIST_LENGTH": 10, "show_progress": False, "train_neg_sample_args": None,
            "seed": 7}
    model_class = get_model(model_name)
    built = []
    for config in (PluginConfig(model=model_name, dataset="tiny", config_dict=dict(user)),
                   Config(model=model_class, dataset="tiny", config_dict=dict(user))):
        train, loss = _first_batch_loss(config, model_class)
        built.append((config, train, loss))
    (plugin, plugin_train, plugin_loss), (plain, plain_train, plain_loss) = built
    for key in model_class.CONFIG_KEYS:
        assert plugin[key.name] == plain[key.name], key.name
    assert plugin["loss_type"] == "CE" and plugin["train_stride"] == 5
    assert plugin_train.sample_size == plain_train.sample_size  # the same windows
    torch.testing.assert_close(plugin_loss, plain_loss)


@pytest.mark.parametrize("model_name", ["SASRec", "RKSA"])
def test_both_config_routes_resolve_the_same_run_plan(model_name, tiny_data):
    """The plugin's Config and RecBole's own Config (+ ``import recbole_sasrec_ext``) resolve the
    same RunPlan — the loss, the windows, no training negatives — without the user setting
    ``loss_type`` or ``train_neg_sample_args`` (RKSA.yaml of RecBole's route used to give BCE),
    and the model built from either trains the same first-batch loss. Neither config changes
    after it is built."""
    import copy

    import torch

    from recbole_sasrec_ext import Config as PluginConfig
    from recbole_sasrec_ext import get_model
    from recbole_sasrec_ext.contract.plan import RunPlan, plan_of

    user = {"data_path": str(tiny_data), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "MAX_ITEM_LIST_LENGTH": 10, "show_progress": False, "seed": 7}
    model_class = get_model(model_name)
    built = []
    for config in (PluginConfig(model=model_name, dataset="tiny", config_dict=dict(user)),
                   Config(model=model_class, dataset="tiny", config_dict=dict(user))):
        settings = copy.deepcopy(config.final_config_dict)
        plan = plan_of(config)
        _, loss = _first_batch_loss(config, model_class)
        assert config.final_config_dict == settings  # not written after it was resolved
        assert plan_of(config) is plan
        built.append((plan, loss))
    (plugin_plan, plugin_loss), (plain_plan, plain_loss) = built
    assert isinstance(plugin_plan, RunPlan) and plugin_plan == plain_plan
    assert (plugin_plan.loss_type, plugin_plan.train_stride) == ("CE", 5)
    assert plugin_plan.needs_training_negatives is False
    assert (plugin_plan.protocol, plugin_plan.filter_seen) == ("full", False)
    torch.testing.assert_close(plugin_loss, plain_loss)
