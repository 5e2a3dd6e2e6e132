"""The device_speed benchmark's bookkeeping (no training runs here)."""

import pytest

from recbole_sasrec_ext.benchmark import device_speed


def test_summary_per_epoch_seconds_and_time_to_target():
    points = [
        {"epoch": 0, "train_seconds": 2.0, "test": 0.40},
        {"epoch": 1, "train_seconds": 3.0, "test": 0.58},
        {"epoch": 3, "train_seconds": 7.0, "test": 0.57},  # a 2-epoch gap, as SASRec.pytorch logs
    ]
    row = device_speed.summarize("x", points, 123.45, 0.58)
    assert row["epochs"] == 4
    assert row["seconds_per_epoch_mean"] == pytest.approx((2 + 1 + 2 + 2) / 4)
    assert row["seconds_per_epoch_median"] == 2.0
    assert (row["seconds_to_target"], row["epoch_at_target"]) == (3.0, 2)
    assert (row["final_test"], row["best_test"], row["peak_memory_mb"]) == (0.57, 0.58, 123.5)


def test_target_never_reached():
    row = device_speed.summarize("x", [{"epoch": 0, "train_seconds": 1.0, "test": 0.1}], 1.0, 0.58)
    assert row["seconds_to_target"] is None and row["epoch_at_target"] is None


def test_sasrec_pytorch_log_line_is_parsed():
    line = ("epoch:20, time: 31.250000(s), valid (NDCG@10: 0.5012, HR@10: 0.7700), "
            "test (NDCG@10: 0.4800, HR@10: 0.7500)")
    match = device_speed._SASREC_PYTORCH_LINE.search("Evaluating" + line)
    assert match.groups() == ("20", "31.250000", "0.5012", "0.7700", "0.4800", "0.7500")
    assert match.group(device_speed._SASREC_PYTORCH_METRICS["ndcg@10"] + 1) == "0.4800"


def test_bad_system_and_checkout_are_exit_2(capsys):
    assert device_speed.main(["--systems", "nope"]) == 2
    assert "unknown system 'nope'" in capsys.readouterr().err
    assert device_speed.main(["--systems", "", "--checkout", "main"]) == 2
    assert "--checkout 'main': expected NAME=FOLDER" in capsys.readouterr().err
