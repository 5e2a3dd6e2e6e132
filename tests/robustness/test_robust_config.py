"""Config inputs: model and data set honoured from config files, empty names, duplicate yaml
keys (issue 22)."""

from __future__ import annotations

import json

import pytest
from _robust import FAST, FAST_POP, bad_input, good_data, run_main


def test_model_and_dataset_in_a_config_file_are_used(tmp_path, capsys):
    data = good_data(tmp_path, "fromyaml")
    (tmp_path / "c.yaml").write_text(f"model: Pop\ndataset: fromyaml\ndata_path: {data}\n")
    code, out, err = run_main(["--config_files", str(tmp_path / "c.yaml"), *FAST_POP], capsys)
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert (summary["model"], summary["dataset"]) == ("Pop", "fromyaml")


def test_command_line_names_win_over_the_config_file(tmp_path, capsys):
    data = good_data(tmp_path, "cli")
    (tmp_path / "c.yaml").write_text("model: SASRec\ndataset: fromyaml\n")
    code, out, err = run_main(["--config_files", str(tmp_path / "c.yaml"), "--model", "Pop",
                               "--dataset", "cli", f"--data_path={data}", *FAST_POP], capsys)
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert (summary["model"], summary["dataset"]) == ("Pop", "cli")


@pytest.mark.parametrize("option, expected", [
    ("--dataset", "data set name '' is not allowed"),
    ("--model", "model ''"),
])
def test_an_empty_name_is_an_error_not_the_default(tmp_path, capsys, option, expected):
    data = good_data(tmp_path)
    argv = ["--dataset", "tiny", f"--data_path={data}", *FAST, option, ""]
    bad_input(tmp_path, argv, expected, capsys)


@pytest.mark.parametrize("text, line, key", [
    ("epochs: 1\nlearning_rate: 0.01\nepochs: 2\n", 3, "epochs"),
    ("eval_args:\n  mode: full\n  order: TO\n  mode: uni100\n", 4, "mode"),
])
def test_a_key_given_twice_in_a_yaml_file_is_an_error(tmp_path, capsys, text, line, key):
    data = good_data(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    argv = ["--dataset", "tiny", f"--data_path={data}", *FAST,
            "--config_files", str(tmp_path / "c.yaml")]
    bad_input(tmp_path, argv, f"c.yaml:{line}: not valid yaml (duplicate key '{key}')", capsys)


def test_a_search_space_key_given_twice_is_an_error(tmp_path):
    from recbole_sasrec_ext.apps.tune import read_space
    from recbole_sasrec_ext.common.errors import PluginError

    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {type: uniform, low: 0.1, high: 0.2}\n"
                    "learning_rate: {type: uniform, low: 0.3, high: 0.4}\n")
    with pytest.raises(PluginError, match=r"space.yaml:2: not valid yaml \(duplicate key"):
        read_space(path)


@pytest.mark.parametrize("model, key, owners", [
    ("SASRec", "--num_layers=2", "belongs to GRU4Rec, GRU4RecCPR, GRU4RecF, GRU4RecKG and 1 more"),
    ("Pop", "--n_layers=2", "belongs to AutoInt, BERT4Rec"),
    ("RecBole.Pop", "--inner_size=16", "belongs to BERT4Rec"),
])
def test_a_key_of_another_model_is_an_error_naming_it(tmp_path, capsys, model, key, owners):
    data = good_data(tmp_path)
    argv = ["--model", model, "--dataset", "tiny", f"--data_path={data}", *FAST_POP, key]
    name = key[2:].split("=")[0]
    line = bad_input(tmp_path, argv, f"config key '{name}' is not a key of model {model}", capsys)
    assert owners in line


def test_a_key_of_the_model_itself_is_fine(tmp_path, capsys):
    data = good_data(tmp_path)
    code, _, err = run_main(["--model", "SASRec", "--dataset", "tiny", f"--data_path={data}",
                             *FAST, "--n_layers=1"], capsys)
    assert code == 0, err


def test_a_yaml_key_of_another_model_is_an_error(tmp_path, capsys):
    data = good_data(tmp_path)
    (tmp_path / "c.yaml").write_text("num_layers: 2\n")
    argv = ["--dataset", "tiny", f"--data_path={data}", *FAST,
            "--config_files", str(tmp_path / "c.yaml")]
    bad_input(tmp_path, argv, "config key 'num_layers' is not a key of model SASRec", capsys)
