"""Checkpoints carry RNG states and a data fingerprint: a run killed with SIGKILL and resumed with
``--resume`` ends exactly like an uninterrupted run; a checkpoint refuses other data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tiny_rows, write_inter

from recbole_sasrec_ext import run
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.training import checkpoint
from recbole_sasrec_ext.training.lr_schedule import plateau_factor

ARGS = {
    "epochs": 10,
    "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 10,
    "hidden_size": 16,
    "inner_size": 16,
    "train_batch_size": 16,
    "stopping_step": 100,
}


#: The killed run is SIGKILLed at the start of this (0-based) epoch: deterministic, whatever the
#: machine's speed (a checkpoint of an earlier epoch exists: epoch 0 always improves).
KILL_AT_EPOCH = 5

#: Child that runs the CLI and kills itself with SIGKILL when epoch ``argv[1]`` starts.
_KILLED_CHILD = """
import os, signal, sys
from recbole_sasrec_ext.apps.cli import main
from recbole_sasrec_ext.training.trainer import PluginTrainer
kill_at, train_epoch = int(sys.argv[1]), PluginTrainer._train_epoch
def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
    if epoch_idx == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return train_epoch(self, train_data, epoch_idx, *args, **kwargs)
PluginTrainer._train_epoch = _train_epoch
sys.exit(main(sys.argv[2:]))
"""


def _cli(args: list[str], cwd: Path, kill_at_epoch: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if kill_at_epoch is None:
        command = [sys.executable, str(ROOT / "run_recbole.py"), *args]
    else:
        command = [sys.executable, "-c", _KILLED_CHILD, str(kill_at_epoch), *args]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _scores(summary: dict) -> list[tuple[int, float]]:
    return [(h["epoch"], h["valid_score"]) for h in summary["valid_history"]]


@pytest.mark.parametrize(
    ("extra", "kill_at"),
    [({}, KILL_AT_EPOCH), ({"weight_ema_epochs": 2.0}, KILL_AT_EPOCH),
     # epoch 4 brings no new best (rate halved), epoch 5 does: the checkpoint the run resumes
     # from has a halved rate that only its history tells
     ({"lr_plateau_patience": 1}, 6)],
    ids=["plain", "weight_ema", "lr_plateau"],
)
def test_killed_run_resumes_to_the_same_test_metrics(tmp_path, extra, kill_at):
    data = write_inter(tmp_path / "data", "tiny", tiny_rows(n_users=60, max_len=25))
    config = {**ARGS, **extra, "data_path": str(data)}
    full = json.loads(run("SASRec", "tiny", config_dict=dict(config)).to_json())

    work = tmp_path / "killed"
    work.mkdir()
    args = ["--model", "SASRec", "--dataset", "tiny", *(f"--{k}={v}" for k, v in config.items())]
    proc = _cli(args, work, kill_at_epoch=kill_at)
    proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, "the run was not killed"
    (saved,) = list((work / "saved").glob("*.pth"))
    state = checkpoint.load(saved)
    assert state["epoch"] < kill_at
    if "lr_plateau_patience" in extra:
        scores = [h["valid_score"] for h in state["progress"]["history"]]
        assert plateau_factor(scores, 1, 0.5, bigger=True) == 0.5

    resumed = _cli([f"--resume=saved/{saved.name}"], work)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["test_result"] == full["test_result"]
    assert _scores(summary) == _scores(full)  # every epoch's validation, before and after the kill
    assert summary["best_valid_score"] == full["best_valid_score"]


def _one_item_changed(rows: list[tuple]) -> list[tuple]:
    """The same users, items and token order, one interaction's item replaced by another."""
    rows = list(rows)
    for index in range(len(rows) - 1, -1, -1):
        user, item, t = rows[index]
        others = [r for i, r in enumerate(rows) if i != index]
        if item not in {r[1] for r in others}:
            continue
        seen_by_user = {r[1] for r in rows if r[0] == user}
        earlier = [r[1] for r in rows[:index] if r[1] not in seen_by_user]
        if earlier:
            rows[index] = (user, earlier[0], t)
            return rows
    raise AssertionError("no row to change")


def test_checkpoint_refuses_other_data_with_the_same_item_count(tmp_path):
    data = write_inter(tmp_path / "data", "tiny", tiny_rows(seed=0))
    summary = run("SASRec", "tiny", config_dict={**ARGS, "epochs": 1, "data_path": str(data)})
    other = write_inter(tmp_path / "other", "tiny", _one_item_changed(tiny_rows(seed=0)))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(
        PluginError, match=r"checkpoint .* was trained on other data \(interactions_hash"
    ):
        run(None, None, config_dict={"data_path": str(other)}, resume=summary.checkpoint)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing new


def test_resume_refuses_another_model(tmp_path):
    data = write_inter(tmp_path / "data", "tiny", tiny_rows())
    summary = run("SASRec", "tiny", config_dict={**ARGS, "epochs": 1, "data_path": str(data)})
    with pytest.raises(PluginError, match="the checkpoint is of model 'SASRec', not 'RKSA'"):
        run("RKSA", None, resume=summary.checkpoint)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(3)
    state = checkpoint.rng_state(gen)
    path = tmp_path / "s.pth"
    checkpoint.save_atomic({"format": checkpoint.CHECKPOINT_FORMAT, "rng": state}, path)
    expected = (
        random.random(),
        np.random.rand(),
        torch.rand(1).item(),
        torch.rand(1, generator=gen).item(),
    )
    random.seed(0), np.random.seed(0), torch.manual_seed(0), gen.manual_seed(0)
    checkpoint.set_rng_state(checkpoint.load(path)["rng"], gen)
    got = (
        random.random(),
        np.random.rand(),
        torch.rand(1).item(),
        torch.rand(1, generator=gen).item(),
    )
    assert got == expected
