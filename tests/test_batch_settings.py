"""The speed benchmarks' batching settings: ``plain`` turns every batching key off explicitly (a
recipe default must not leak into the reference), and a bad setting is one line, exit 2."""

import pytest

from recbole_sasrec_ext.benchmark import buckets, epoch_floor
from recbole_sasrec_ext.benchmark.batch_settings import setting_args, setting_keys


def test_plain_sets_every_batching_key_off_and_settings_override_it():
    assert setting_keys("plain") == {"length_split": False, "length_buckets": 0}
    assert setting_keys("length_buckets=32+length_split=True") == {
        "length_split": True, "length_buckets": 32}
    assert setting_args("length_split=True") == ["--length_split=True", "--length_buckets=0"]


@pytest.mark.parametrize("main", [buckets.main, epoch_floor.main])
@pytest.mark.parametrize("bad", ["length_split", "dropout=0.5"])
def test_a_bad_setting_is_one_line_and_exit_2(main, bad, tmp_path, capsys):
    floor = tmp_path / "floor.py"
    floor.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["--floor", str(floor), "--dataset", "x", "--out", str(tmp_path / "out"),
              "--settings", "plain", bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and f"--settings: {bad!r}" in err[-1]
    assert not (tmp_path / "out").exists()


def test_the_floor_benchmark_trains_the_loops_model_not_the_recipes(tiny_data):
    """The plugin side of epoch_floor is the bare loop's model under full ranking: no recipe key
    (label smoothing, d=64, one block, ...) may change it."""
    from recbole_sasrec_ext import Config

    config = Config("SASRec", "tiny", config_dict={
        **epoch_floor.FLOOR_MODEL, "data_path": str(tiny_data),
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}})
    assert (config["loss_type"], config["label_smoothing"], config["hidden_size"],
            config["n_layers"], config["train_stride"]) == ("CE", 0.0, 50, 2, 0)


def test_bf16_is_given_only_where_a_setting_names_it():
    """RecBole's models have no bf16 key: a setting that does not name it must not pass it."""
    assert setting_keys("length_split=True+bf16=True") == {
        "length_split": True, "length_buckets": 0, "bf16": True}
    assert "bf16" not in setting_keys("plain")
    assert "bf16" not in setting_keys("length_split=True")


@pytest.mark.parametrize("bad", ["2", "0x1", "1x0", "2x1x1", "ax1"])
def test_a_bad_layout_is_one_line_and_exit_2(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        buckets.main(["--dataset", "x", "--out", str(tmp_path / "out"), "--layouts", "1x2", bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and f"--layouts: {bad!r}: expected PxT" in err[-1]
    assert not (tmp_path / "out").exists()


def test_each_run_gets_its_allocator_processes_and_threads(tmp_path, monkeypatch):
    """Every setting x allocator x layout runs once, in that order, each child with its own
    environment and --nproc; the ratio column is against the model's first run."""
    import json
    import subprocess

    seen = []

    def fake_run(command, env, **kwargs):
        seen.append((command, env))
        seconds = 10.0 * (1 + len(seen))  # 20, 30, 40, 50 s per epoch
        history = [{"train_seconds": seconds * (e + 1), "valid_score": 0.01 * e}
                   for e in range(2)]
        return subprocess.CompletedProcess(command, 0, json.dumps({"valid_history": history}), "")

    monkeypatch.setattr(buckets.subprocess, "run", fake_run)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # the user's own: not passed on
    assert buckets.main(["--models", "RecBole.SASRec", "--dataset", "ml-100k", "--data_path", "",
                         "--epochs", "2", "--settings", "length_split=True", "--allocators",
                         "system", "tuned", "--layouts", "1x2", "2x1",
                         "--out", str(tmp_path / "out")]) == 0
    runs = [(env["RECBOLE_SASREC_EXT_ALLOCATOR"], env["OMP_NUM_THREADS"],
             [a for a in command if a.startswith(("--nproc", "--data_path"))])
            for command, env in seen]
    assert runs == [("system", "2", []), ("system", "1", ["--nproc=2"]),
                    ("tuned", "2", []), ("tuned", "1", ["--nproc=2"])]
    assert not any(k.startswith("MALLOC_") for _, env in seen for k in env)
    rows = (tmp_path / "out" / "buckets.md").read_text().splitlines()[-4:]
    assert [row.split(" | ")[4:6] for row in rows] == [
        ["20.0", "1.00x"], ["30.0", "1.50x"], ["40.0", "2.00x"], ["50.0", "2.50x"]]
