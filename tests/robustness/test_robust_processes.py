"""Process lifetime: ``--nproc`` workers die with their launcher (kill -9 included), SIGTERM is
handled like Ctrl-C (issue 22). Checked with the process table, as ``ps`` shows it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _robust import good_data
from conftest import ROOT

LONG = ["--dataset", "tiny", "--epochs=100000", "--stopping_step=100000", "--eval_step=50",
        "--MAX_ITEM_LIST_LENGTH=10", "--hidden_size=16", "--inner_size=16",
        "--show_progress=False"]


def _children() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            table.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(name))
    return table


def descendants(pid: int) -> list[int]:
    table, found, todo = _children(), [], [pid]
    while todo:
        for child in table.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(tmp: Path, nproc: int) -> tuple[subprocess.Popen, Path]:
    data = good_data(tmp)
    err = tmp / "stderr.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with err.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recbole_sasrec_ext", *LONG, f"--data_path={data}",
             f"--nproc={nproc}"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=handle,
        )
    deadline = time.monotonic() + 240
    while "training [" not in err.read_text():  # the processes are training
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run did not start training: {err.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_launcher_takes_the_workers_with_it(tmp_path):
    proc, _ = _start(tmp_path, 2)
    workers = [p for p in descendants(proc.pid) if alive(p)]
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = [p for p in workers if alive(p)]
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert not orphans, "workers outlived their launcher"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("nproc", [1, 2])
def test_sigterm_is_handled_like_ctrl_c(tmp_path, nproc):
    proc, err = _start(tmp_path, nproc)
    workers = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    lines = [line for line in err.read_text().splitlines() if line.startswith("error")]
    assert lines == ["error: terminated (SIGTERM)"]
    assert "Traceback" not in err.read_text()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_of_a_benchmark_runner_stops_its_run(tmp_path):
    import shlex

    from test_benchmark import REPO, kill_hung_fakes, make_fake, write_suite

    from recbole_sasrec_ext.benchmark.runner import RUN_CMD_ENV

    fake = make_fake(tmp_path / "fake")
    path = write_suite(tmp_path / "s.yaml", ["Slow"], [1], timeout_s=120)
    env = {**os.environ, RUN_CMD_ENV: shlex.join(fake["prefix"]),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    bench = subprocess.Popen(
        [sys.executable, "-m", "recbole_sasrec_ext.benchmark", str(path), "--out",
         str(tmp_path / "out")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while not (fake["pids"].exists() and fake["pids"].read_text().strip()):
            assert time.monotonic() < deadline and bench.poll() is None
            time.sleep(0.05)
        child = int(fake["pids"].read_text().split()[0])
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=60)
        assert bench.returncode == 128 + signal.SIGTERM
        assert "terminated (SIGTERM): finished runs are saved" in err
        assert "Traceback" not in err
        deadline = time.monotonic() + 15
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        kill_hung_fakes(fake)
        if bench.poll() is None:
            bench.kill()
