"""The synthetic ML-20M-like generator: exact sizes, determinism, learnable structure,
CLI errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from recbole_sasrec_ext.convert import synthetic
from recbole_sasrec_ext.convert.synthetic import SyntheticSpec, main, parse_size, write_synthetic

SPEC = SyntheticSpec(users=40, items=60, interactions=2_000, seed=3, min_length=20)


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def test_shape_sizes_and_order(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "CHUNK_USERS", 16)  # three chunks of users
    summary = write_synthetic(SPEC, tmp_path, "syn")
    frame = _read(summary.inter_path)
    assert list(frame.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    assert len(frame) == summary.interactions == 2_000
    users, items, times = (frame[c].to_numpy() for c in frame.columns)
    lengths = np.bincount(users)[1:]
    assert lengths.size == 40 and lengths.min() >= 20 and lengths.sum() == 2_000
    assert lengths.max() > 2 * np.median(lengths)  # heavy tail
    assert items.min() >= 1 and items.max() <= 60
    assert np.all(np.diff(users) >= 0)  # by user
    same = users[1:] == users[:-1]
    assert np.all(np.diff(times)[same] > 0)  # then strictly by time
    counts = np.sort(np.bincount(items, minlength=61)[1:])[::-1]
    assert counts[0] > 5 * np.median(counts)  # a popularity head
    yaml = summary.yaml_path.read_text()
    assert "TIME_FIELD: timestamp" in yaml and "inter: [user_id, item_id, timestamp]" in yaml


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_synthetic(SPEC, tmp_path / "a", "syn").inter_path.read_bytes()
    b = write_synthetic(SPEC, tmp_path / "b", "syn").inter_path.read_bytes()
    other = SyntheticSpec(**{**SPEC.__dict__, "seed": 4})
    c = write_synthetic(other, tmp_path / "c", "syn").inter_path.read_bytes()
    assert a == b and a != c


def test_next_item_follows_the_successor_graph(tmp_path):
    spec = SyntheticSpec(users=300, items=500, interactions=30_000, seed=0)
    frame = _read(write_synthetic(spec, tmp_path, "syn").inter_path)
    users, items = frame["user_id:token"].to_numpy(), frame["item_id:token"].to_numpy()
    same = users[1:] == users[:-1]
    prev, nxt = items[:-1][same], items[1:][same]
    half = prev.size // 2  # learn the top-10 next items of each item on one half, test on the other
    pairs = pd.DataFrame({"a": prev[:half], "b": nxt[:half]}).value_counts().reset_index()
    top = pairs.groupby("a").head(10)
    known = set(zip(top["a"], top["b"]))
    sequential_hit = np.mean([(a, b) in known for a, b in zip(prev[half:], nxt[half:])])
    popular = set(pd.Series(nxt[:half]).value_counts().index[:10])
    popularity_hit = np.mean([b in popular for b in nxt[half:]])
    assert sequential_hit > 0.4 and sequential_hit > 3 * popularity_hit


@pytest.mark.parametrize(
    "args, message",
    [
        (["--users", "100", "--items", "50", "--interactions", "500"],
         "fewer than users x min_length"),
        (["--users", "x", "--items", "50", "--interactions", "5k"], "--users: not a size"),
        (["--users", "10", "--items", "1", "--interactions", "5k"],
         "items = 1 must be an integer >= 2"),
        (["--users", "10", "--items", "50", "--interactions", "5k", "--name", "../x"],
         "dataset name"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    argv = [*args, "--out", str(tmp_path)]
    if "--name" not in args:
        argv += ["--name", "syn"]
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not any(tmp_path.rglob("*.inter"))


def test_existing_output_is_refused_and_cli_runs(tmp_path):
    cmd = [sys.executable, "-m", "recbole_sasrec_ext.convert.synthetic", "--users", "30",
           "--items", "40",
           "--interactions", "1k", "--seed", "1", "--out", str(tmp_path), "--name", "syn"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("syn: 30 users,") and "1000 interactions" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_parse_size():
    assert [parse_size(t) for t in ("20M", "5k", "1_000", "1.5M")] == [
        20_000_000, 5_000, 1_000, 1_500_000
    ]
