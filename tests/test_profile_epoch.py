"""benchmark/profile_epoch.py profiles the trainer's own epoch of a run built as the CLI
builds it."""

import json

import pytest

from recbole_sasrec_ext.benchmark import profile_epoch


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec"])
def test_profiles_the_requested_batches_and_lists_operators(tiny_data, capsys, model):
    extra = ["--train_neg_sample_args=~"] if model == "GRU4Rec" else ["--hidden_size=8",
                                                                        "--inner_size=8"]
    code = profile_epoch.main(["--model", model, "--dataset", "tiny", "--batches", "2",
                               "--warmup", "1", f"--data_path={tiny_data}",
                               "--MAX_ITEM_LIST_LENGTH=10", "--train_batch_size=8", *extra])
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out.splitlines()[0])
    assert summary["model"] == model and summary["batch_size"] == 8
    assert summary["epoch_s_implied"] == pytest.approx(
        summary["s_per_batch"] * summary["batches_per_epoch"], rel=0.01, abs=0.1)
    assert "aten::" in out  # the profiler's operator table


def test_an_override_that_is_not_key_value_is_a_usage_error(tiny_data):
    with pytest.raises(SystemExit) as exit_info:
        profile_epoch.main(["--model", "SASRec", "--dataset", "tiny", "learning_rate"])
    assert exit_info.value.code == 2


def test_a_bad_setting_is_one_line_and_exit_2_before_training(tiny_data, capsys, tmp_path):
    code = profile_epoch.main(["--model", "SASRec", "--dataset", "tiny",
                               f"--data_path={tiny_data}", "--hidden_size=-4"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "hidden_size" in err[0]


def test_zero_batches_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        profile_epoch.main(["--model", "SASRec", "--dataset", "tiny", "--batches", "0"])
    assert exit_info.value.code == 2
