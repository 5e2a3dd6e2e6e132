"""Configuration: plugin defaults, explicit RecBole built-ins, data paths, validation."""

import pytest
from conftest import write_inter

from recbole_sasrec_ext import Config, PluginError, get_model
from recbole_sasrec_ext.config.plugin_config import bundled_dataset_dir


def test_plugin_model_defaults_and_implementation(tiny_data):
    config = Config("SASRec", "tiny", config_dict={"data_path": str(tiny_data)})
    # full ranking, nothing given: the full-ranking recipe (recipe-full-ranking.yaml)
    assert config["hidden_size"] == 64 and config["n_heads"] == 1 and config["loss_type"] == "CE"
    assert (config["n_layers"], config["layer_norm"], config["init"]) == (1, "sasrec", "normal")
    assert config["adam_betas"] == [0.9, 0.999] and config["train_batch_size"] == 128
    assert config["train_stride"] == config["MAX_ITEM_LIST_LENGTH"] // 2
    assert (config["label_smoothing"], config["stopping_step"]) == (0.3, 20)
    assert any(note.startswith("full-ranking recipe: ") for note in config.notes)
    assert config["train_neg_sample_args"]["distribution"] == "none"
    assert config["implementation"] == "recbole_sasrec_ext.models.sasrec.SASRec"


def test_recipe_paper_keeps_the_paper_settings_under_full_ranking(tiny_data):
    config = Config("SASRec", "tiny", config_dict={"data_path": str(tiny_data), "recipe": "paper"})
    assert (config["hidden_size"], config["n_layers"], config["loss_type"]) == (50, 2, "BCE")
    assert config["adam_betas"] == [0.9, 0.98] and config["train_stride"] == 0
    assert not any(note.startswith("full-ranking recipe") for note in config.notes)


def test_recipe_yields_to_every_user_key_and_to_sampled_ranking(tiny_data):
    config = Config("SASRec", "tiny", config_dict={"data_path": str(tiny_data),
                                                   "n_layers": 3, "loss_type": "GBCE"})
    assert (config["n_layers"], config["loss_type"], config["hidden_size"]) == (3, "GBCE", 64)
    sampled = {"data_path": str(tiny_data), "eval_args": {"mode": "uni100"}}
    config = Config("SASRec", "tiny", config_dict=sampled)
    assert (config["hidden_size"], config["loss_type"], config["train_stride"]) == (50, "BCE", 0)


def test_unknown_recipe_names_the_key(tiny_data):
    with pytest.raises(PluginError, match="config key 'recipe' = 'bogus' is not allowed: expected "
                                          "one of 'auto', 'paper', 'full_ranking'"):
        Config("SASRec", "tiny", config_dict={"data_path": str(tiny_data), "recipe": "bogus"})


def test_rksa_takes_the_recipe_but_its_own_block(tiny_data):
    config = Config("RKSA", "tiny", config_dict={"data_path": str(tiny_data)})
    assert (config["hidden_size"], config["n_layers"], config["loss_type"]) == (64, 1, "CE")
    assert config["layer_norm"] == "pre" and config["init"] == "normal"
    assert (config["label_smoothing"], config["stopping_step"], config["length_split"]) == (
        0.3, 20, False)


def test_recbole_builtin_under_explicit_name(tiny_data):
    config = Config("RecBole.SASRec", "tiny", config_dict={"data_path": str(tiny_data)})
    assert config["hidden_size"] == 64 and config["hidden_act"] == "gelu"  # RecBole's own yaml
    assert config["implementation"].startswith("recbole.model.sequential_recommender")
    assert get_model("SASRec").__module__ == "recbole_sasrec_ext.models.sasrec"


def test_priority_files_dict(tiny_data, tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("hidden_size: 32\nn_layers: 3\n")
    config = Config("SASRec", "tiny", config_file_list=[str(f)],
                    config_dict={"data_path": str(tiny_data), "n_layers": 1})
    assert config["hidden_size"] == 32 and config["n_layers"] == 1


def test_time_field_added_to_load_col(tmp_path):
    data = write_inter(tmp_path, "t", [(1, 2, 3)])
    config = Config("GRU4Rec", "t", config_dict={"data_path": str(data)})
    assert "timestamp" in config["load_col"]["inter"]
    data = write_inter(tmp_path / "b", "u", [(1, 2)], header="user_id:token\titem_id:token")
    config = Config("GRU4Rec", "u", config_dict={"data_path": str(data)})
    assert "timestamp" not in config["load_col"]["inter"]


def test_data_path_default_and_ml100k_fallback(tmp_path):
    config = Config("Pop", "ml-100k")
    assert config["data_path"] == str(bundled_dataset_dir("ml-100k"))
    write_inter(tmp_path / "datasets", "ml-100k", [(1, 2, 3)])
    config = Config("Pop", "ml-100k")  # cwd is tmp_path: datasets/ml-100k now exists
    assert config["data_path"] == "datasets/ml-100k"


@pytest.mark.parametrize(
    "key, value",
    [("n_layers", 0), ("hidden_act", "tanh"), ("gbce_t", 2.0), ("scale_embedding", "yes"),
     ("adam_betas", [0.9]),
     ("train_batch_size", 0), ("learning_rate", 0.0)],
)
def test_bad_values_name_the_key(tiny_data, key, value):
    with pytest.raises(PluginError, match=f"'{key}'"):
        Config("SASRec", "tiny", config_dict={"data_path": str(tiny_data), key: value})
