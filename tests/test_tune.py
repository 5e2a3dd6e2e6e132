"""tune: trials selected on validation, a table and the best config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, fast_config

from recbole_sasrec_ext.apps.tune import Dimension, read_space, tune, write
from recbole_sasrec_ext.common.errors import PluginError

SPACE = """\
learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
hidden_dropout_prob: {type: uniform, low: 0.1, high: 0.5}
n_layers: {type: int, low: 1, high: 2}
loss_type: {type: choice, choices: [BCE, CE]}
"""


def test_three_trials_select_on_validation_and_write_table_and_best_yaml(tiny_data, tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    space = read_space(tmp_path / "space.yaml")
    assert space[3] == Dimension("loss_type", "choice", choices=("BCE", "CE"))
    fixed = fast_config(tiny_data, epochs=1)
    result = tune("SASRec", "tiny", space, 3, config_dict=fixed, seed=1)
    assert [t.number for t in result.trials] == [0, 1, 2]
    assert all(0 <= t.valid_score <= 1 and 1e-4 <= t.params["learning_rate"] <= 1e-2
               for t in result.trials)
    assert result.best.valid_score == max(t.valid_score for t in result.trials)
    table, best = write(result, tmp_path / "out", "SASRec", "tiny", None, fixed)
    rows = table.read_text().splitlines()
    assert rows[0] == "# tune: SASRec on tiny, selected on validation NDCG@10"
    assert len([r for r in rows if r.startswith("| ")]) == 4 and "test" not in table.read_text()
    chosen = yaml.safe_load(best.read_text())
    assert chosen["learning_rate"] == result.best.params["learning_rate"] and chosen["epochs"] == 1


@pytest.mark.parametrize("text, message", [
    ("lr: {type: normal, low: 0, high: 1}", "key 'lr': expected {type: one of uniform"),
    ("lr: {type: loguniform, low: 0, high: 1}",
     "key 'lr': 'loguniform' needs numbers low < high and low > 0"),
    ("n_layers: {type: int, low: 1.5, high: 3}",
     "key 'n_layers': 'int' needs integer low and high"),
    ("a: {type: choice, choices: []}", "key 'a': 'choice' needs a non-empty list 'choices'"),
])
def test_bad_space_names_the_key(tmp_path, text, message):
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(PluginError, match=message.replace("{", r"\{").replace("(", r"\(")):
        read_space(tmp_path / "s.yaml")


def test_cli_bad_space_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "recbole_sasrec_ext", "tune", "--space",
                           "missing.yaml", "--trials", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: search space file not found: missing.yaml"]


def test_cli_three_trials_on_ml100k(tmp_path):
    """The command as a user types it, on ml-100k with a tiny budget: 3 trials, a table, a yaml."""
    (tmp_path / "space.yaml").write_text(
        "learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
        "hidden_dropout_prob: {type: uniform, low: 0.1, high: 0.5}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    budget = ["--epochs=1", "--MAX_ITEM_LIST_LENGTH=20", "--hidden_size=16", "--inner_size=16"]
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext", "tune", "--model", "SASRec",
         "--dataset", "ml-100k",
         "--space", "space.yaml", "--trials", "3", "--out", "out", *budget],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (tmp_path / "out" / "trials.md").read_text()
    assert table.splitlines()[0] == "# tune: SASRec on ml-100k, selected on validation NDCG@10"
    assert len([r for r in table.splitlines() if r.startswith("| ")]) == 4  # header + 3 trials
    assert yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["epochs"] == 1
