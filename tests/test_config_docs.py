"""One source per config fact: every key a plugin model declares is documented, with its type and
range, in its yaml chain (``extends``), and every key of those yamls is declared."""

from __future__ import annotations

import re

import pytest
import yaml

from recbole_sasrec_ext.apps.cli import EXIT_BAD_INPUT, main
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.config.plugin_config import Config, model_yaml_chain, properties_dir
from recbole_sasrec_ext.contract.keys import COMMON_KEYS, Key
from recbole_sasrec_ext.models.registry import PLUGIN_MODELS

_LINE = re.compile(r"^(\w+):.*?#\s*(.*)$")


def documented(model: str) -> dict[str, str]:
    """key -> its comment, over the model's yaml chain (a later file overrides)."""
    comments: dict[str, str] = {}
    for path in model_yaml_chain(properties_dir() / "model" / f"{model}.yaml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _LINE.match(line)
            if match and match.group(1) != "extends":
                comments[match.group(1)] = match.group(2)
    return comments


def range_words(key: Key) -> list[str]:
    """What the comment of ``key`` must mention: its type, bounds and choices."""
    kind = {list: "list"}.get(key.kind, key.kind.__name__)
    words = [f"({kind}"]
    words += [f"{v:g}" for v in (key.low, key.high) if v is not None]
    return words + [str(c) for c in key.choices or ()]


@pytest.mark.parametrize("model", sorted(PLUGIN_MODELS))
def test_every_declared_key_is_documented_with_its_range(model: str) -> None:
    comments = documented(model)
    for key in PLUGIN_MODELS[model].CONFIG_KEYS:
        assert key.name in comments, f"{model}: {key.name} is declared but not in its yaml"
        for word in range_words(key):
            assert word in comments[key.name], f"{model}: {key.name}: '{word}' not documented"


@pytest.mark.parametrize("model", sorted(PLUGIN_MODELS))
def test_every_yaml_key_is_declared_and_commented(model: str) -> None:
    declared = {k.name: k for k in (*PLUGIN_MODELS[model].CONFIG_KEYS, *COMMON_KEYS)}
    values: dict = {}
    for path in model_yaml_chain(properties_dir() / "model" / f"{model}.yaml"):
        values.update(yaml.safe_load(path.read_text(encoding="utf-8")))
    values.pop("extends", None)
    assert set(values) == set(documented(model)), "every yaml key has a comment"
    for name, value in values.items():
        assert name in declared, f"{model}: {name} is in the yaml but not declared"
        declared[name].check(value)  # the default is allowed


def test_model_yamls_extend_the_shared_transformer_yaml() -> None:
    model_dir = properties_dir() / "model"
    chain = model_yaml_chain(model_dir / "RKSA.yaml")
    assert chain == [model_dir / "transformer.yaml", model_dir / "RKSA.yaml"]
    sasrec = yaml.safe_load((model_dir / "SASRec.yaml").read_text())
    assert sasrec == {"extends": "transformer.yaml"}


def test_extends_loops_and_missing_parents_are_errors(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nx: 1\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(PluginError, match=r"b\.yaml: 'extends: a\.yaml' loops"):
        model_yaml_chain(tmp_path / "a.yaml")
    with pytest.raises(PluginError, match=r"c\.yaml: 'extends: nowhere\.yaml' names a missing"):
        model_yaml_chain(tmp_path / "c.yaml")


def test_extends_is_not_a_config_key_and_values_are_inherited(tiny_data) -> None:
    config = Config("RKSA", "tiny", config_dict={"data_path": str(tiny_data), "recipe": "paper"})
    assert "extends" not in config.final_config_dict
    inherited = (config["hidden_size"], config["hidden_act"], config["adam_betas"])
    assert inherited == (50, "relu", [0.9, 0.98]) and config["kernel_loss_weight"] == 0.1


@pytest.mark.parametrize(
    "key, value, allowed", [("n_heads", 2, "int in [1, 1]"), ("bf16", True, "one of False")]
)
def test_rksa_constraints_are_declared(tiny_data, key, value, allowed) -> None:
    message = f"'{key}' = {value} is not allowed: expected {allowed}"
    with pytest.raises(PluginError, match=re.escape(message)):
        Config("RKSA", "tiny", config_dict={"data_path": str(tiny_data), key: value})


def test_n_heads_must_divide_hidden_size_exit_2(tiny_data, capsys) -> None:
    argv = ["--model", "SASRec", "--dataset", "tiny", f"--data_path={tiny_data}", "--n_heads=3"]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    message = "config key 'n_heads' = 3 is not allowed: it must divide 'hidden_size' = 64"
    assert err == f"error: {message}"
