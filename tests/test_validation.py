"""Config validation: the known keys include every key RecBole documents or reads, unknown keys
name the closest known one, data set names are safe."""

from __future__ import annotations

from pathlib import Path

import pytest
import recbole
import yaml
from conftest import tiny_rows, write_inter

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.config.validation import (
    check_dataset_name,
    check_known_keys,
    check_metrics,
    known_keys,
)
from recbole_sasrec_ext.models.registry import PLUGIN_MODELS, get_model

RECBOLE_PROPERTIES = Path(recbole.__file__).resolve().parent / "properties"


def _yaml_files() -> list[Path]:
    return sorted(RECBOLE_PROPERTIES.rglob("*.yaml"))


@pytest.mark.parametrize(
    "path", _yaml_files(), ids=lambda p: str(p.relative_to(RECBOLE_PROPERTIES))
)
def test_every_recbole_yaml_key_is_known(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    check_known_keys(data, known_keys())


def test_every_plugin_model_key_is_known():
    for name in PLUGIN_MODELS:
        check_known_keys(
            [k.name for k in getattr(get_model(name), "CONFIG_KEYS", ())], known_keys()
        )


def test_keys_recbole_reads_in_code_are_known():
    check_known_keys(
        ["gpu_id", "use_gpu", "benchmark_filename", "neg_sampling", "enable_amp", "local_rank"],
        known_keys(),
    )


def test_a_config_that_spells_out_recbole_overall_and_model_yaml_is_accepted(tmp_path):
    from recbole_sasrec_ext.config.plugin_config import Config

    data = write_inter(tmp_path / "data", "tiny", tiny_rows())
    files = [
        str(RECBOLE_PROPERTIES / "overall.yaml"),
        str(RECBOLE_PROPERTIES / "model" / "BPR.yaml"),
    ]
    config = Config("BPR", "tiny", config_file_list=files, config_dict={"data_path": str(data)})
    assert config["model"] == "BPR" and config["embedding_size"] == 64


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("learnin_rate", "learning_rate"),
        ("epoch", "epochs"),
        ("n_head", "n_heads"),
        ("MAX_ITEM_LIST_LEN", "MAX_ITEM_LIST_LENGTH"),
        ("train_batchsize", "train_batch_size"),
        ("hiden_dropout_prob", "hidden_dropout_prob"),
    ],
)
def test_unknown_key_names_the_closest(key, suggestion):
    with pytest.raises(
        PluginError, match=f"unknown config key '{key}': did you mean '{suggestion}'"
    ):
        check_known_keys([key], known_keys())


def test_data_set_fields_are_known_keys():
    check_known_keys(["genre"], known_keys(["genre"]))
    with pytest.raises(PluginError):
        check_known_keys(["genre"], known_keys())


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m", "Amazon_Beauty.v2", "games", "x1"])
def test_safe_dataset_names(name):
    check_dataset_name(name)


@pytest.mark.parametrize(
    "name", ["", ".hidden", "a/b", "..", "x..y", "a\\b", "-x", "/tmp/x", "a b", None]
)
def test_unsafe_dataset_names(name):
    with pytest.raises(PluginError, match="data set name"):
        check_dataset_name(name)


@pytest.mark.parametrize(
    "metrics, topk, valid, ok",
    [
        (["Hit", "NDCG"], [10], "NDCG@10", True),
        (["Hit", "NDCG"], 5, "hit@5", True),
        (["AUC", "NDCG"], [10], "AUC", True),
        (["Hit"], [10], "NDCG@10", False),
        (["Hit"], [True], "hit@1", False),
        (["Hit"], [], "hit@10", False),
        ([], [10], "hit@10", False),
    ],
)
def test_metric_rules(metrics, topk, valid, ok):
    config = {"metrics": metrics, "topk": topk, "valid_metric": valid}
    if ok:
        check_metrics(config)
    else:
        with pytest.raises(PluginError, match="config key '(metrics|topk|valid_metric)'"):
            check_metrics(config)
