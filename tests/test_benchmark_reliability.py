"""Benchmark faults: a killed runner takes its child run with it, a cut results row is run again,
suite overrides are validated like the command line."""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_benchmark import REPO, calls_of, kill_hung_fakes, make_fake, write_suite

from recbole_sasrec_ext.benchmark import cli, results
from recbole_sasrec_ext.benchmark.runner import RUN_CMD_ENV, run_suite
from recbole_sasrec_ext.benchmark.suite import SuiteError, load_suite


@pytest.fixture()
def fake(tmp_path: Path) -> dict:
    fake = make_fake(tmp_path / "fake")
    yield fake
    kill_hung_fakes(fake)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_child_run_dies_with_a_killed_runner(tmp_path: Path, fake: dict) -> None:
    path = write_suite(tmp_path / "s.yaml", ["Slow"], [1], timeout_s=120)
    env = {
        **os.environ,
        RUN_CMD_ENV: shlex.join(fake["prefix"]),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "recbole_sasrec_ext.benchmark",
        str(path),
        "--out",
        str(tmp_path / "out"),
    ]
    bench = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (fake["pids"].exists() and fake["pids"].read_text().strip()):
        assert time.monotonic() < deadline and bench.poll() is None
        time.sleep(0.05)
    child = int(fake["pids"].read_text().split()[0])
    assert _alive(child)
    bench.send_signal(signal.SIGKILL)
    bench.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child run outlived the runner"


def test_a_cut_row_is_run_again(tmp_path: Path, fake: dict) -> None:
    suite = load_suite(write_suite(tmp_path / "s.yaml", ["SASRec", "RKSA"], [1]))
    out = tmp_path / "out"
    run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    csv_path = out / results.CSV_NAME
    text = csv_path.read_text()
    csv_path.write_text(text[: len(text) - 25])  # the last row cut in its last cells
    assert [r["model"] for r in results.read_rows(csv_path)] == ["SASRec"]
    summary = run_suite(suite, out, command_prefix=fake["prefix"], stream=io.StringIO())
    assert (summary.ran, summary.skipped) == (1, 1)
    assert [c.split()[0] for c in calls_of(fake)] == ["SASRec", "RKSA", "RKSA"]
    rows = results.read_rows(csv_path)
    assert sorted((r["model"], r["status"]) for r in rows) == [("RKSA", "ok"), ("SASRec", "ok")]


def test_an_ok_row_without_numbers_is_run_again() -> None:
    assert results.is_complete({"status": "ok", "test_hit@10": "0.5"})
    assert not results.is_complete({"status": "ok", "test_hit@10": "0.5", "test_ndcg@10": "0.2x"})
    assert not results.is_complete({"status": "ok"})


def test_suite_override_typo_is_an_error_with_a_suggestion(tmp_path: Path, capsys) -> None:
    path = write_suite(tmp_path / "typo.yaml", ["SASRec"], [1])
    path.write_text(
        path.read_text().replace("SASRec: {epochs: 3}", "SASRec: {epochs: 3, learnin_rate: 0.01}")
    )
    with pytest.raises(
        SuiteError,
        match=r"models.SASRec: unknown config key 'learnin_rate': did you mean 'learning_rate'",
    ):
        load_suite(path)
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs: -1", "config key 'epochs' = -1"),
        ("learning_rate: .inf", "expected a finite number"),
        ("train_batch_size: 0", "config key 'train_batch_size' = 0"),
    ],
)
def test_suite_override_values_are_checked(tmp_path: Path, override: str, message: str) -> None:
    path = write_suite(tmp_path / "bad.yaml", ["SASRec"], [1])
    path.write_text(path.read_text().replace("SASRec: {epochs: 3}", "SASRec: {" + override + "}"))
    with pytest.raises(SuiteError, match=message.replace("(", r"\(")):
        load_suite(path)
