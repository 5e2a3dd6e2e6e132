"""Several processes (``--nproc=N``, torchrun) with gloo on the CPU: one summary, exact sharded
evaluation, and 2 processes x B/2 rows training like 1 process x B rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, fast_config, tiny_rows, write_inter

from recbole_sasrec_ext.apps.cli import main
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.parallel import group as process_group
from recbole_sasrec_ext.parallel.sharding import (
    batch_count,
    batch_range,
    epoch_order,
    rank_batches,
)

#: 2 x B/2 vs 1 x B: largest absolute difference of any weight after 2 epochs (see
#: test_two_half_batches_train_like_one_full_batch; measured 6e-8, weights up to about 1).
WEIGHT_TOLERANCE = 1e-5
PER_USER = "per_user.npz"
UNI100 = "--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'mode': 'uni100'}"


# ----- sharding (no processes) -----------------------------------------------------------------
def test_rank_parts_of_each_global_batch_are_the_single_process_batch():
    order = epoch_order(37, seed=5, epoch=3)
    parts = [rank_batches(order, 8, rank, 2) for rank in range(2)]
    assert [len(p) for p in parts] == [5, 5] == [batch_count(37, 8, 2)] * 2
    for k, batch in enumerate(order.split(8)):  # 8, 8, 8, 8, 5 rows
        assert torch.equal(torch.cat([parts[0][k], parts[1][k]]), batch)
    assert ([len(b) for b in parts[0]] == [4, 4, 4, 4, 3]
            and [len(b) for b in parts[1]] == [4, 4, 4, 4, 2])


def test_a_last_batch_smaller_than_the_world_is_skipped_on_every_rank():
    order = torch.arange(17)  # 2 batches of 8, then 1 row
    assert ([len(rank_batches(order, 8, r, 2)) for r in range(2)] == [2, 2]
            == [batch_count(17, 8, 2)] * 2)
    assert batch_count(17, 8, 1) == 3


def test_epoch_order_is_seeded_by_seed_plus_epoch():
    a, b = epoch_order(50, 2020, 0), epoch_order(50, 2020, 1)
    assert torch.equal(a, epoch_order(50, 2020, 0)) and not torch.equal(a, b)
    assert torch.equal(a.sort().values, torch.arange(50))
    assert torch.equal(epoch_order(5, 2020, 0, shuffle=False), torch.arange(5))


@pytest.mark.parametrize("n, world, expected", [
    (7, 2, [range(0, 4), range(4, 7)]), (1, 3, [range(0, 1), range(1, 1), range(1, 1)])
])
def test_evaluation_batches_are_contiguous_runs(n, world, expected):
    assert [batch_range(n, r, world) for r in range(world)] == expected


class _Batches:
    """An evaluation loader's interface as :func:`eval_batches` uses it: 11 rows in batches of 3."""

    batch_sampler = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]

    @staticmethod
    def collate_fn(index):
        return torch.tensor(index) * 10  # (k,) one "row" per index


def _gather_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from recbole_sasrec_ext.parallel.evaluation import gather_rows
    from recbole_sasrec_ext.parallel.sharding import eval_batches

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    mine = list(eval_batches(_Batches(), rank, world))
    parts = {"rec.topk": torch.cat(mine)} if mine else {}
    torch.save({"mine": mine, "all": gather_rows(parts, world)}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_every_rank_gathers_every_row_once_in_batch_order(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_worker, args=(3, port, str(tmp_path)), nprocs=3)
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(3)]
    assert [[b.tolist() for b in r["mine"]] for r in results] == [
        [[0, 10, 20], [30, 40, 50]], [[60, 70, 80]], [[90, 100]]
    ]
    for r in results:
        assert r["all"].keys() == {"rec.topk"} and torch.equal(
            r["all"]["rec.topk"], torch.arange(11) * 10
        )


# ----- launcher environment and bad input --------------------------------------------------------
def test_environment_of_a_launched_process():
    assert process_group.from_env({}) is None
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    info = process_group.from_env(env)
    assert (info.rank, info.local_rank, info.world_size, info.is_main, info.reports_errors) == (
        3, 1, 4, False, False
    )
    with pytest.raises(PluginError,
                       match="RANK set but LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not"):
        process_group.from_env({"RANK": "0"})
    with pytest.raises(PluginError, match="are not consistent"):
        process_group.from_env({**env, "RANK": "4"})


def _info(world: int) -> process_group.ProcessGroupInfo:
    return process_group.ProcessGroupInfo(rank=0, local_rank=0, world_size=world,
                                          local_world_size=world)


def test_configure_records_the_process_in_recbole_keys():
    config = {"nproc": None, "train_batch_size": 8, "device": torch.device("cpu"), "local_rank": 0}
    assert process_group.configure(config, _info(2)) == torch.device("cpu")
    assert {
        k: config[k] for k in ("world_size", "local_rank", "offset", "nproc", "single_spec")
    } == {"world_size": 2, "local_rank": 0, "offset": 0, "nproc": 2, "single_spec": True}
    assert process_group.backend_for(torch.device("cpu")) == "gloo"
    assert process_group.backend_for(torch.device("cuda", 1)) == "nccl"


def test_a_batch_smaller_than_the_world_is_refused():
    config = {"nproc": None, "train_batch_size": 1, "device": torch.device("cpu")}
    with pytest.raises(PluginError,
                       match="'train_batch_size' = 1 is below the number of processes"):
        process_group.configure(config, _info(2))


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="needs fewer than 2 GPUs")
def test_more_gpu_processes_than_gpus_is_refused():
    with pytest.raises(
        PluginError, match=r"2 processes on this machine need 2 GPUs \(nccl: one per process\)"
    ):
        process_group.device_for(_info(2), torch.device("cuda"))


@pytest.mark.parametrize("value, message", [
    ("0", "config key 'nproc' = 0 is not allowed: expected an int >= 1"),
    ("two", "config key 'nproc' = 'two' is not allowed: expected an int >= 1"),
])
def test_bad_nproc_is_one_line_exit_2(tiny_data, value, message, capsys):
    assert main(["--dataset", "tiny", f"--data_path={tiny_data}", f"--nproc={value}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"


@pytest.mark.parametrize("key", ["local_rank", "world_size", "single_spec"])
def test_recbole_multi_process_keys_belong_to_the_launcher(tiny_data, key, capsys, tmp_path):
    assert main(["--dataset", "tiny", f"--data_path={tiny_data}", f"--{key}=1"]) == 2
    assert f"config key '{key}' is set by the launcher, not by the user" in capsys.readouterr().err
    assert not (tmp_path / "saved").exists() and not (tmp_path / "log").exists()


def test_nproc_in_a_library_call_is_refused(tiny_data):
    from recbole_sasrec_ext import run

    with pytest.raises(
        PluginError,
        match="this call trains in one process; start 2 with run_recbole.py --nproc=2",
    ):
        run("SASRec", "tiny", config_dict={"data_path": str(tiny_data), "nproc": 2})


# ----- two gloo processes ------------------------------------------------------------------------
def _varied_data(folder: Path) -> Path:
    """60 users with 1 to 20 interactions: rows with different numbers of targets."""
    return write_inter(folder, "tiny", tiny_rows(n_users=60, n_items=40, max_len=20))


def _args(data_path: Path, model: str) -> list[str]:
    return [
        "--model", model, "--dataset", "tiny", f"--data_path={data_path}", "--epochs=2",
        "--eval_step=2", "--MAX_ITEM_LIST_LENGTH=10", "--train_batch_size=8", "--eval_batch_size=4",
        "--hidden_size=16", "--inner_size=16", "--n_layers=1", "--n_heads=1",
        "--hidden_dropout_prob=0.0", "--attn_dropout_prob=0.0", "--metric_decimal_place=12",
        "--show_progress=False", "--state=WARNING",
    ]


def _launch(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name in process_group.LAUNCH_VARIABLES:
        env.pop(name, None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # one summary, from rank 0
    return json.loads(lines[0])


def _evaluate_alone(checkpoint: Path) -> dict:
    """The checkpoint's valid and test results, one process (this one), and its test users'
    per-user metrics (``per_user``: a :class:`~recbole_sasrec_ext.evaluation.per_user.PerUser`)."""
    from recbole_sasrec_ext.apps.quick_start import load_data_and_model
    from recbole_sasrec_ext.evaluation.per_user import PerUserRecorder
    from recbole_sasrec_ext.training.registry import get_trainer

    config, model, dataset, _, valid_data, test_data = load_data_and_model(str(checkpoint))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    result = {"valid": trainer.evaluate(valid_data, load_best_model=False)}
    recorder = PerUserRecorder.attach(trainer, config["USER_ID_FIELD"])
    result["test"] = trainer.evaluate(test_data, load_best_model=False)
    result = {phase: {k: float(v) for k, v in values.items()} for phase, values in result.items()}
    uid = config["USER_ID_FIELD"]
    result["per_user"] = recorder.result(
        config["metrics"], config["topk"], lambda ids: dataset.id2token(uid, ids)
    )
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The plugin's SASRec (full ranking, CE at every position) in 2 processes (``--nproc=2``) and
    in 1 (``torchrun``); RecBole's SASRec through the plugin (uni100) in 2 processes."""
    root = tmp_path_factory.mktemp("parallel")
    data = _varied_data(root / "data")
    script = [sys.executable, str(ROOT / "run_recbole.py")]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                "-m", "recbole_sasrec_ext"]
    plans = {
        "two": script + _args(data, "SASRec") + ["--nproc=2", f"--per_user_file={PER_USER}"],
        "one": torchrun + _args(data, "SASRec"),
        "recbole": script + _args(data, "RecBole.SASRec") + [UNI100, "--nproc=2"],
    }
    result = {}
    for name, command in plans.items():
        (root / name).mkdir()
        result[name] = (root / name, _launch(command, root / name))
    return result


@pytest.mark.parametrize("name", ["two", "recbole"])
def test_two_processes_write_one_summary_one_log_one_checkpoint(runs, name):
    folder, proc = runs[name]
    summary = _summary(proc)
    assert summary["world_size"] == 2 and summary["epochs"] == 2 and summary["device"] == "cpu"
    assert [p.name for p in (folder / "saved").iterdir()] == [Path(summary["checkpoint"]).name]
    assert len(list((folder / "log").rglob("*.log"))) == 1
    assert len(list((folder / "log_tensorboard").iterdir())) == 1
    assert proc.stderr == ""  # state WARNING: no warning from any rank, DDP or the launcher


@pytest.mark.parametrize("name, protocol", [("two", "full"), ("recbole", "uni100")])
def test_sharded_evaluation_equals_one_process_exactly(runs, name, protocol):
    folder, proc = runs[name]
    summary = _summary(proc)
    assert summary["protocol"] == protocol
    alone = _evaluate_alone(folder / summary["checkpoint"])
    assert summary["test_result"] == alone["test"]
    assert (summary["best_valid_result"] == summary["valid_history"][-1]["valid_result"]
            == alone["valid"])


def test_two_processes_write_every_test_users_metrics_once(runs):
    """Each rank evaluates its share of the test users; rank 0 writes all of them, as one process
    evaluating the same checkpoint computes them."""
    from recbole_sasrec_ext.evaluation import per_user

    folder, proc = runs["two"]
    summary = _summary(proc)
    assert summary["per_user_file"] == PER_USER
    written = per_user.load(folder / PER_USER)
    alone = _evaluate_alone(folder / summary["checkpoint"])["per_user"]
    assert len(written.users) == len(set(written.users)) == len(alone.users) > 30
    # rank 0's users, then rank 1's: the batch order
    assert list(written.users) == list(alone.users)
    assert written.values.keys() == alone.values.keys()
    for name, values in written.values.items():
        assert values.tolist() == alone.values[name].tolist()
        assert abs(float(values.mean()) - summary["test_result"][name]) < 1e-6


def test_the_trainer_makes_the_checkpoint_folder_before_recbole_checks_for_it(
    tiny_data, monkeypatch
):
    """RecBole's Trainer checks whether ``checkpoint_dir`` exists, then creates it: two processes
    can both see it missing, and the second ``os.makedirs`` fails (seen in a 2-process run). The
    plugin's trainer makes it (``exist_ok``) first, so RecBole's check always finds it."""
    import recbole.trainer.trainer as recbole_trainer

    from recbole_sasrec_ext import Config
    from recbole_sasrec_ext.apps.quick_start import build
    from recbole_sasrec_ext.training.trainer import PluginTrainer

    checked = []

    def ensure_dir(path):  # RecBole's, recording whether the folder was already there
        checked.append(os.path.isdir(path))
        os.makedirs(path, exist_ok=True)

    monkeypatch.setattr(recbole_trainer, "ensure_dir", ensure_dir)
    config = Config("SASRec", "tiny",
                    config_dict=fast_config(tiny_data, checkpoint_dir="fresh/saved"))
    PluginTrainer(config, build(config)[-1])
    assert checked == [True]


def _key_bias_free(state: dict) -> dict:
    """``state`` without the attention's key bias (the middle third of ``qkv.bias``): its gradient
    is zero in exact arithmetic (a constant added to every key of a query leaves its softmax alone),
    so it holds rounding noise that Adam rescales to steps of about ``learning_rate``."""
    out = {}
    for name, value in state.items():
        if name.endswith("attention.qkv.bias"):
            q, _, v = value.chunk(3)
            value = torch.cat([q, v])
        out[name] = value
    return out


def test_two_half_batches_train_like_one_full_batch(runs):
    """The plugin's SASRec, dropout 0, users of 1-20 interactions: 2 processes x 4 rows a step train
    like 1 process x 8 rows (each process's mean loss weighted by its share of the targets)."""
    states = {}
    for name, world in (("one", 1), ("two", 2)):
        folder, proc = runs[name]
        summary = _summary(proc)
        assert summary["world_size"] == world and summary["epochs"] == 2
        states[name] = torch.load(folder / summary["checkpoint"], weights_only=True)
        assert states[name]["epoch"] == 1  # eval_step 2: the checkpoint of the last epoch
    one, two = (_key_bias_free(states[n]["state_dict"]) for n in ("one", "two"))
    assert one.keys() == two.keys()
    worst = max(float((one[k].double() - two[k].double()).abs().max()) for k in one)
    assert worst < WEIGHT_TOLERANCE


def test_bad_input_in_two_processes_is_one_line_exit_2(tmp_path):
    data = _varied_data(tmp_path / "data")
    proc = _launch([sys.executable, str(ROOT / "run_recbole.py"), *_args(data, "SASRec"),
                    "--learning_rat=0.1", "--nproc=2"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "error: unknown config key 'learning_rat': did you mean 'learning_rate'?\n"
    )
    assert not (tmp_path / "saved").exists() and not (tmp_path / "log").exists()
