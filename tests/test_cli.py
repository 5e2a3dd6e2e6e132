"""The command line and the quick start end to end on a tiny data set: JSON summary, errors
without tracebacks, safe checkpoints."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, fast_config, write_inter

from recbole_sasrec_ext import load_data_and_model, run
from recbole_sasrec_ext.apps.cli import main
from recbole_sasrec_ext.contract.summary import RunSummary


def _cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(ROOT / "run_recbole.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def test_cli_prints_json_summary_last_and_checkpoint_is_weights_only(tiny_data, tmp_path):
    proc = _cli(["--model", "SASRec", "--dataset", "tiny", f"--data_path={tiny_data}", "--epochs=2",
                 "--show_progress=False", "--MAX_ITEM_LIST_LENGTH=10"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = RunSummary.from_json(proc.stdout.strip().splitlines()[-1])  # every field present
    assert summary.implementation == "recbole_sasrec_ext.models.sasrec.SASRec"
    assert summary.epochs == 2 and set(summary.test_result) >= {"hit@10", "ndcg@10"}
    assert [r.epoch for r in summary.valid_history] == [0, 1] and summary.explanation is None
    state = torch.load(tmp_path / summary.checkpoint, weights_only=True)
    assert state["config"]["model"] == "SASRec" and "state_dict" in state


def test_unknown_model_is_one_line_listing_models(tmp_path):
    proc = _cli(["--model", "NoSuchModel", "--dataset", "ml-100k"], cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "unknown model 'NoSuchModel'" in lines[0]
    for name in ("SASRec", "RKSA", "Pop", "RecBole.SASRec", "GRU4Rec", "Caser"):
        assert name in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "nowhere"], "dataset 'nowhere' not found: looked for"),
        (["--hidden_dropout_prob=1.5"],
         "config key 'hidden_dropout_prob' = 1.5 is not allowed: expected float in [0.0, 1.0)"),
        (["--loss_type=MSE"],
         "config key 'loss_type' = 'MSE' is not allowed: expected one of 'BCE', 'CE'"),
        (["--epochs=-1"], "config key 'epochs' = -1"),
        (["--config_files", "missing.yaml"], "config file not found: missing.yaml"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_data, args, message, capsys):
    argv = ["--model", "SASRec", "--dataset", "tiny", f"--data_path={tiny_data}", *args]
    if "--dataset" in args:
        argv = ["--model", "SASRec", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_atomic_file_names_file_and_line(tmp_path, capsys):
    data = write_inter(tmp_path / "d", "bad", [(1, 2, 3), (1, 3, "noon")])
    assert main(["--model", "Pop", "--dataset", "bad", f"--data_path={data}"]) == 2
    err = capsys.readouterr().err
    assert "bad.inter:3: field 'timestamp' (float) is not a number: 'noon'" in err


def test_load_data_and_model_scores_the_same(tiny_data):
    result = run("SASRec", "tiny", config_dict=fast_config(tiny_data, epochs=2))
    config, model, _, _, _, test_data = load_data_and_model(result.checkpoint)
    from recbole_sasrec_ext.training.registry import get_trainer

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    again = trainer.evaluate(test_data, load_best_model=False)
    assert {k: float(v) for k, v in again.items()} == result.test_result


def test_checkpoint_names_are_unique_and_recbole_builtin_is_reachable(tiny_data):
    a = run("SASRec", "tiny", config_dict=fast_config(tiny_data, epochs=1))
    b = run("RecBole.SASRec", "tiny", config_dict=fast_config(tiny_data, epochs=1, n_heads=2))
    assert a.checkpoint != b.checkpoint
    assert b.implementation == "recbole.model.sequential_recommender.sasrec.SASRec"
    assert torch.load(b.checkpoint, weights_only=True)["config"]["model"] == "RecBole.SASRec"


def test_uni100_uses_fast_path_and_matches_recbole_path(tiny_data):
    """Sampled evaluation that encodes each user once equals RecBole's per-candidate path."""
    from recbole_sasrec_ext import Config
    from recbole_sasrec_ext.apps.quick_start import build
    from recbole_sasrec_ext.training.trainer import PluginTrainer

    cfg = fast_config(tiny_data,
                      eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni20"})
    config = Config("SASRec", "tiny", config_dict=cfg)
    _, _, _, test, model = build(config)
    trainer = PluginTrainer(config, model)
    fast = trainer.evaluate(test, load_best_model=False)
    from recbole.trainer import Trainer

    # RecBole's path
    trainer._neg_sample_batch_eval = lambda batch: Trainer._neg_sample_batch_eval(trainer, batch)
    slow = trainer.evaluate(test, load_best_model=False)
    assert dict(fast) == dict(slow)
