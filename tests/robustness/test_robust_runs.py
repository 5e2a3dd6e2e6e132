"""Runs: TensorBoard folders of their own, use_gpu without CUDA (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _robust import FAST, FAST_POP, bad_input, good_data, run_main


def test_tensorboard_folders_are_never_shared(tmp_path, capsys):
    data = good_data(tmp_path, "tiny.v1")  # a "." in the data set name
    dirs = []
    for model in ("RecBole.Pop", "RecBole.Pop", "Pop"):
        code, out, err = run_main(["--model", model, "--dataset", "tiny.v1",
                                   f"--data_path={data}", *FAST_POP], capsys)
        assert code == 0, err
        summary = json.loads(out.splitlines()[-1])
        stem = Path(summary["log_file"]).name[: -len(".log")]
        assert Path(summary["tensorboard_dir"]).name == stem  # the whole name, not its head
        dirs.append(summary["tensorboard_dir"])
    assert len(set(dirs)) == 3
    assert all(Path(d).is_dir() for d in dirs)


def test_use_gpu_without_cuda_is_an_error(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = good_data(tmp_path)
    bad_input(tmp_path, ["--dataset", "tiny", f"--data_path={data}", *FAST, "--use_gpu=True"],
              "config key 'use_gpu' = True is not allowed: no CUDA device is available", capsys)


def test_resume_of_a_finished_run_says_so_and_does_nothing(tmp_path, capsys):
    data = good_data(tmp_path)
    code, out, err = run_main(["--dataset", "tiny", f"--data_path={data}", *FAST], capsys)
    assert code == 0, err
    saved = json.loads(out.splitlines()[-1])["checkpoint"]
    bad_input(tmp_path, [f"--resume={saved}"],
              f"--resume={saved}: this run finished (after 1 epochs): there is nothing to resume",
              capsys)


def test_use_gpu_in_a_config_file_without_cuda_warns_where_it_runs(tmp_path, monkeypatch):
    import torch

    from recbole_sasrec_ext.config.plugin_config import Config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = good_data(tmp_path)
    (tmp_path / "c.yaml").write_text("use_gpu: True\n")
    with pytest.warns(UserWarning, match="no CUDA device is available.*trains on the CPU"):
        config = Config("SASRec", "tiny", config_file_list=[str(tmp_path / "c.yaml")],
                        config_dict={"data_path": str(data)})
    assert str(config["device"]) == "cpu"


def test_resume_of_a_checkpoint_without_its_config_is_one_line(tmp_path, capsys):
    import torch

    path = tmp_path / "noconfig.pth"
    torch.save({"format": "recbole_sasrec_ext/1", "state_dict": {}}, path)
    bad_input(tmp_path, [f"--resume={path}"], "has no run configuration", capsys)


def test_a_huge_learning_rate_with_one_batch_per_epoch_diverges(tmp_path, capsys):
    data = good_data(tmp_path)
    argv = ["--dataset", "tiny", f"--data_path={data}", *FAST, "--learning_rate=1e6",
            "--train_batch_size=4096"]  # one batch: the epoch's mean predates its only step
    code, out, err = run_main(argv, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 3 and out == "", err[-2000:]
    assert len(lines) == 1 and "training diverged at epoch 0" in lines[0]
    assert not list(tmp_path.rglob("*.pth"))  # no checkpoint of a diverged run


def test_a_normal_one_batch_run_is_not_affected(tmp_path, capsys):
    data = good_data(tmp_path)
    argv = ["--dataset", "tiny", f"--data_path={data}", *FAST, "--train_batch_size=4096"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
